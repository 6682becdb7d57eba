//! A small YAML emitter for the CAS session: block mappings and sequences, every scalar
//! double-quoted (so no value can change the document's structure), keys plain when they are
//! made of letters, digits, `_`, `-` and `.`.

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Yaml {
    Str(String),
    Null,
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Yaml)>) -> Self {
        Self::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn seq(items: impl IntoIterator<Item = Yaml>) -> Self {
        Self::Seq(items.into_iter().collect())
    }

    fn inline(&self) -> Option<String> {
        match self {
            Self::Str(s) => Some(quote(s)),
            Self::Null => Some("null".into()),
            Self::Seq(v) if v.is_empty() => Some("[]".into()),
            Self::Map(v) if v.is_empty() => Some("{}".into()),
            _ => None,
        }
    }

    /// The document, ending with a newline.
    pub fn to_document(&self) -> String {
        let mut out = String::new();
        match self.inline() {
            Some(s) => {
                out.push_str(&s);
                out.push('\n');
            }
            None => emit(self, 0, &mut out),
        }
        out
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A double-quoted YAML scalar.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key(k: &str) -> String {
    if is_plain_key(k) {
        k.to_owned()
    } else {
        quote(k)
    }
}

fn emit(value: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Yaml::Map(entries) => {
            for (k, v) in entries {
                match v.inline() {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}{}: {s}", key(k));
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        let child = if matches!(v, Yaml::Seq(_)) {
                            indent
                        } else {
                            indent + 2
                        };
                        emit(v, child, out);
                    }
                }
            }
        }
        Yaml::Seq(items) => {
            for item in items {
                match item.inline() {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    None => {
                        // The nested block at indent + 2, its first line's indentation replaced by "- ".
                        let mut nested = String::new();
                        emit(item, indent + 2, &mut nested);
                        let _ = write!(out, "{pad}- {}", &nested[indent + 2..]);
                    }
                }
            }
        }
        Yaml::Str(_) | Yaml::Null => {
            if let Some(s) = value.inline() {
                let _ = writeln!(out, "{pad}{s}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_document() {
        let doc = Yaml::map([
            ("name", Yaml::str("s1")),
            (
                "list",
                Yaml::seq([
                    Yaml::str("a"),
                    Yaml::map([("k", Yaml::str("v")), ("l", Yaml::seq([Yaml::str("x")]))]),
                ]),
            ),
            ("empty", Yaml::seq([])),
            ("m", Yaml::map([("with space", Yaml::Null)])),
        ]);
        assert_eq!(
            doc.to_document(),
            "name: \"s1\"\nlist:\n- \"a\"\n- k: \"v\"\n  l:\n  - \"x\"\nempty: []\nm:\n  \"with space\": null\n"
        );
    }

    #[test]
    fn scalars_cannot_break_out() {
        assert_eq!(quote("a\"b\\c\nd: e\u{1}"), "\"a\\\"b\\\\c\\nd: e\\x01\"");
    }
}
