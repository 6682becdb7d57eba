#!/usr/bin/env python3
"""Import circles between the modules (files) of each crate under crates/.

Reads every `crate::a::b`, `use crate::{a, b::c}` and `super::x` path of each source file
(test modules at the end of a file and comments left out), and a parent's references to its
own child modules (`session::X` in `tee/mod.rs`); an edge goes to the longest module prefix
of the path. Prints every strongly connected component of more than one module, then the
count. `EDGES=1` also prints the edges inside each component.

Usage: scripts/module-cycles.py [repository root]   (default: the current directory)
"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "."
def modname(src, path):
    rel = os.path.relpath(path, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
    return '::'.join(parts)
total = 0
for crate in sorted(os.listdir(os.path.join(root, 'crates'))):
    src = os.path.join(root, 'crates', crate, 'src')
    if not os.path.isdir(src): continue
    mods = {}
    for d, _, fs in os.walk(src):
        for f in fs:
            if f.endswith('.rs'):
                p = os.path.join(d, f); mods[modname(src, p)] = p
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        text = open(p).read()
        # drop #[cfg(test)] mod tests { ... } tail roughly: test modules import freely
        cut = text.find('#[cfg(test)]\nmod tests')
        if cut >= 0: text = text[:cut]
        text = re.sub(r'//[^\n]*', '', text)
        refs = set()
        for mt in re.finditer(r'crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)', text):
            refs.add(mt.group(1))
        for mt in re.finditer(r'use crate::\{([^}]*)\}', text):
            for item in mt.group(1).split(','):
                item = item.strip().split('::')
                if item and item[0]: refs.add('::'.join(x for x in item if x and x[0].islower()))
        for mt in re.finditer(r'super::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)', text):
            base = m.split('::')[:-1] if not p.endswith('mod.rs') else m.split('::')[:-1]
            if p.endswith('mod.rs') or p.endswith('lib.rs'): base = m.split('::')[:-1]
            refs.add('::'.join([x for x in base if x] + [mt.group(1)]))
        # A parent names its own child modules without `crate::` (`session::X`, `self::session`).
        for child in re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;', text, re.M):
            if re.search(r'(?<![:\w])(?:self::)?' + child + r'::', text) or re.search(r'use\s+(?:self::)?' + child + r'\b', text):
                refs.add('::'.join([x for x in m.split('::') if x] + [child]))
        for r in refs:
            parts = r.split('::')
            # longest prefix that is a module
            for k in range(len(parts), 0, -1):
                cand = '::'.join(parts[:k])
                if cand in mods:
                    if cand != m and not m.startswith(cand + '::') : edges[m].add(cand)
                    break
    # Tarjan
    index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
    sys.setrecursionlimit(10000)
    def sc(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: sccs.append(comp)
    for v in mods:
        if v not in index: sc(v)
    if os.environ.get("EDGES"):
        for comp in sccs:
            for v in sorted(comp):
                print("  ", v or "<root>", "->", ", ".join(sorted(w for w in edges[v] if w in comp)))
    for comp in sccs:
        total += 1
        print(f'{crate}: cycle of {len(comp)} modules: {", ".join(sorted(x or "<root>" for x in comp))}')
print(f'{total} cycle(s)')
sys.exit(1 if total else 0)
