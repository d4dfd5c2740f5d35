//! Random trees, round-tripped: tar → EROFS image → kernel mount, which
//! must show what GNU tar extracts from the same tar. A seeded loop (set
//! `STRATA_EROFS_FUZZ_SEEDS` for more iterations, `STRATA_EROFS_FUZZ_FIRST`
//! for the first seed); a failure names its seed.

mod common;

use std::collections::BTreeSet;

use common::*;
use strata_test_support::seeded_bytes;

/// xorshift64: small, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn name(rng: &mut Rng, taken: &mut BTreeSet<Vec<u8>>) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-+ !~";
    loop {
        let len = if rng.chance(3) {
            255
        } else {
            1 + rng.below(30) as usize
        };
        let mut n: Vec<u8> = (0..len)
            .map(|_| {
                if rng.chance(2) {
                    0x80 + rng.below(0x7f) as u8
                } else {
                    ALPHABET[rng.below(ALPHABET.len() as u64) as usize]
                }
            })
            .collect();
        if n.starts_with(b".wh.") {
            n[0] = b'w';
        }
        if n != b"." && n != b".." && taken.insert(n.clone()) {
            return n;
        }
    }
}

fn attrs(rng: &mut Rng, mut e: Ent, dir: bool) -> Ent {
    e.mode = rng.below(0o10000) as u32;
    if dir {
        e.mode |= 0o700;
    }
    e.uid = if rng.chance(50) { 0 } else { rng.below(70_000) };
    e.gid = if rng.chance(50) { 0 } else { rng.below(70_000) };
    e.mtime = 1_000_000_000 + rng.below(1_000_000_000);
    if rng.chance(50) {
        e.nsec = Some(rng.below(1_000_000_000) as u32);
    }
    if rng.chance(20) {
        // No newline in values: the PAX reader (tar-rs's) splits records
        // on newlines, so a value holding one is refused, by apply too.
        let v: Vec<u8> = seeded_bytes(rng.next(), rng.below(200) as usize)
            .into_iter()
            .map(|b| if b == b'\n' { b'n' } else { b })
            .collect();
        e = e.xattr(&format!("user.x{}", rng.below(5)), &v);
    }
    if rng.chance(5) {
        e = e.xattr("trusted.t", b"1");
    }
    e
}

/// A directory's entries, then its subdirectories' (as tar writes a
/// tree: GNU tar sets a directory's time when it leaves it).
fn tree(rng: &mut Rng, prefix: &[u8], depth: u32, files: &mut Vec<Vec<u8>>, out: &mut Vec<Ent>) {
    let mut taken = BTreeSet::new();
    let mut subdirs = Vec::new();
    let join = |n: &[u8]| {
        let mut p = prefix.to_vec();
        p.extend_from_slice(n);
        p
    };
    // Now and then a directory of several blocks.
    let count = if rng.chance(5) { 300 } else { rng.below(12) };
    for _ in 0..count {
        let n = name(rng, &mut taken);
        let p = join(&n);
        let e = match rng.below(10) {
            0..=4 => {
                let size = match rng.below(6) {
                    0 => 0,
                    1 => 4096,
                    2 => 4095 + rng.below(3),
                    3 => 4096 * (1 + rng.below(4)) + rng.below(4096),
                    _ => rng.below(5000),
                } as usize;
                files.push(p.clone());
                let data = seeded_bytes(rng.next(), size);
                attrs(rng, Ent::file(&p, data), false)
            }
            5 if depth < 4 => {
                subdirs.push(p);
                continue;
            }
            6 => {
                let mut t = [&b""[..], b"/", b"../", b"./x/"][rng.below(4) as usize].to_vec();
                t.extend(name(rng, &mut BTreeSet::new()));
                let mut e = attrs(rng, Ent::symlink(&p, t), false);
                e.mode = 0o777;
                e.xattrs.clear();
                e
            }
            7 if !files.is_empty() => {
                let t = files[rng.below(files.len() as u64) as usize].clone();
                Ent::link(&p, t)
            }
            8 => attrs(rng, Ent::new(&p, Kind::Fifo), false),
            _ => {
                let (ma, mi) = (rng.below(300) as u32, rng.below(1 << 20) as u32);
                let k = if rng.chance(50) {
                    Kind::Char(ma, mi.max(1))
                } else {
                    Kind::Block(ma, mi)
                };
                attrs(rng, Ent::new(&p, k), false)
            }
        };
        out.push(e);
    }
    for p in subdirs {
        out.push(attrs(rng, Ent::dir(&p), true));
        let mut sub = p.clone();
        sub.push(b'/');
        tree(rng, &sub, depth + 1, files, out);
    }
}

#[test]
fn random_trees_round_trip_through_a_mounted_image() {
    if !require_mount_tools() {
        return;
    }
    let seeds: u64 = std::env::var("STRATA_EROFS_FUZZ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let first: u64 = std::env::var("STRATA_EROFS_FUZZ_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + seeds {
        let mut rng = Rng::new(seed);
        let mut ents = Vec::new();
        tree(&mut rng, b"", 0, &mut Vec::new(), &mut ents);
        let tar = build_tar(&ents);
        let tmp = tempfile::tempdir().unwrap();
        if let Some(dump) = std::env::var_os("STRATA_EROFS_FUZZ_DUMP") {
            std::fs::write(dump, &tar).unwrap();
        }
        let r = std::panic::catch_unwind(|| assert_same_as_gnu_tar(&tar, tmp.path()));
        if let Err(e) = r {
            eprintln!("seed {seed} fails ({} entries)", ents.len());
            std::panic::resume_unwind(e);
        }
    }
}
