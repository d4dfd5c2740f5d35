//! Writes arbitrary bytes, as a layer's tar, into an EROFS image, as the
//! erofs driver does, and checks what a successful write promises without
//! mounting it (a run needs no privilege): the image is whole blocks, its
//! superblock carries EROFS's magic, the data area ends inside it on a
//! block boundary, and its metadata can be hashed as a mount's check
//! hashes it. Errors are expected and ignored; a panic or a broken
//! promise is a finding. The images the tests write are also mounted and
//! checked with `fsck.erofs` (crates/strata-erofs/tests).
#![no_main]

use std::io::{Read, Seek, SeekFrom};

use libfuzzer_sys::fuzz_target;

const BLOCK: u64 = strata_erofs::BLOCK_SIZE;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::tempfile().expect("a temporary file");
    let opts = strata_erofs::Options {
        sync: false,
        ..strata_erofs::Options::default()
    };
    let Ok(report) = strata_erofs::write_layer(data, &mut file, &opts) else {
        return;
    };
    let len = file.metadata().expect("the image's size").len();
    assert_eq!(len, report.image_size, "the report's size is the file's");
    assert!(len >= BLOCK && len % BLOCK == 0, "whole blocks: {len}");
    assert!(
        report.data_end >= BLOCK && report.data_end % BLOCK == 0 && report.data_end <= len,
        "data area ends at {} in an image of {len}",
        report.data_end
    );
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(1024)).expect("seeking");
    file.read_exact(&mut magic).expect("reading the superblock");
    assert_eq!(u32::from_le_bytes(magic), 0xE0F5_E1E2, "EROFS magic");
    strata_erofs::metadata_digest(&file, report.data_end).expect("hashing the metadata");
});
