//! Measures dataset encryption/decryption throughput on a file (default 100 MB).
//!
//! `cargo run --release -p sms-worker --example dataset_throughput [size_mb]`

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use sms_worker::dataset::{self, DatasetKey};
use sms_worker::result_archive;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size_mb: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let plain_path = dir.path().join("plain.bin");
    let enc_path = dir.path().join("plain.bin.enc");
    let dec_path = dir.path().join("plain.bin.dec");
    {
        let mut w = BufWriter::new(File::create(&plain_path)?);
        let mut block = [0u8; 1 << 20];
        for i in 0..size_mb {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u64).wrapping_mul(31).wrapping_add(i) as u8;
            }
            w.write_all(&block)?;
        }
        w.flush()?;
    }
    let mb = size_mb as f64;
    let key = DatasetKey::generate();

    let start = Instant::now();
    let out = dataset::encrypt(
        BufReader::new(File::open(&plain_path)?),
        File::create(&enc_path)?,
        &key,
    )?;
    let t = start.elapsed().as_secs_f64();
    println!(
        "encrypt {size_mb} MB: {t:.3} s, {:.0} MB/s, checksum {}",
        mb / t,
        out.checksum
    );

    let start = Instant::now();
    let out = dataset::decrypt(File::open(&enc_path)?, File::create(&dec_path)?, &key)?;
    let t = start.elapsed().as_secs_f64();
    println!(
        "decrypt {size_mb} MB: {t:.3} s, {:.0} MB/s ({} bytes)",
        mb / t,
        out.plaintext_len
    );

    let start = Instant::now();
    let c = dataset::checksum(File::open(&enc_path)?)?;
    let t = start.elapsed().as_secs_f64();
    println!("sha256 only: {t:.3} s, {:.0} MB/s ({c})", mb / t);

    let pair = result_archive::generate_key_pair_with_bits(2048)?;
    let public = result_archive::ResultPublicKey::from_pem(&pair.public_pem)?;
    let start = Instant::now();
    result_archive::encrypt_result_zip(
        File::open(&plain_path)?,
        &public,
        File::create(dir.path().join("archive.zip"))?,
    )?;
    let t = start.elapsed().as_secs_f64();
    println!(
        "result archive encrypt {size_mb} MB: {t:.3} s, {:.0} MB/s",
        mb / t
    );
    Ok(())
}
