//! The store on the erofs driver, through the built binary: every image
//! layer is one EROFS image file (`erofs/<id>/layer.erofs`), mounted from
//! the file by the kernel while a container over it is mounted; import,
//! create, diff, commit, export, save and load, run, and `check` work as
//! on overlay2. A layer's image changed on disk is refused before the
//! kernel parses it, and `check` names the layer.
//! SKIPPED (failing under CI) without root, or where the kernel cannot
//! mount an EROFS image from a file.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{require_root, sh, skip, Strata};
use fixtures::{assert_same_tree, have_tools, Busybox, INIT_PATHS};
use serde_json::Value;

/// A store on the erofs driver, or SKIPPED.
fn on_erofs(test: &str) -> Option<Strata> {
    if !require_root() {
        return None;
    }
    if !common::require_kernel_fs(test, "erofs") {
        return None;
    }
    Some(Strata::new("erofs"))
}

/// The image files of the store's layers.
fn images(s: &Strata) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(s.root().join("erofs"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("layer.erofs"))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    out
}

/// Mounts (of any kind) at or below the store's root.
fn mounts_under(root: &Path) -> Vec<String> {
    let root = fs::canonicalize(root).unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| Path::new(mp).starts_with(&root))
        .map(str::to_owned)
        .collect()
}

/// A store made as root without `--driver`, where the kernel mounts
/// EROFS images from files, is an erofs store: btrfs (the root is not on
/// btrfs) is the only driver skipped, an import writes the layer's image,
/// and the store keeps the driver.
#[test]
fn a_root_store_picks_erofs_by_itself() {
    let test = "a_root_store_picks_erofs_by_itself";
    let Some(s) = on_erofs(test) else { return };
    let root = s.root();
    let info = common::info_choosing(&root);
    assert_eq!(info["Storage Driver"], "erofs", "{info}");
    let skipped = info["Drivers Skipped"].as_str().unwrap_or_default();
    assert!(
        skipped.starts_with("btrfs: ") && !skipped.contains("erofs"),
        "{info}"
    );
    let homes: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| ["btrfs", "overlay2", "fuse", "erofs", "vfs"].contains(&n.as_str()))
        .collect();
    assert_eq!(homes, ["erofs"]);
    let (img, _) = import_base(&s);
    assert!(img.is_file(), "{}", img.display());
    let info = common::info_choosing(&root);
    assert_eq!(info["Storage Driver"], "erofs", "{info}");
}

/// A store on tmpfs, whose files the kernel cannot mount EROFS images
/// from: the automatic choice says why and goes on to overlay2.
#[test]
fn a_store_on_tmpfs_goes_on_to_overlay2() {
    let test = "a_store_on_tmpfs_goes_on_to_overlay2";
    let Some(s) = on_erofs(test) else { return };
    let dir = s.path("tmpfs");
    fs::create_dir(&dir).unwrap();
    sh(&format!("mount -t tmpfs tmpfs '{}'", dir.display()));
    let _mounted = common::Unmount(dir.clone());
    let root = dir.join("root");
    let info = common::info_choosing(&root);
    assert_eq!(info["Storage Driver"], "overlay2", "{info}");
    let skipped = info["Drivers Skipped"].as_str().unwrap_or_default();
    assert!(
        skipped.contains("; erofs: ") && skipped.contains("not tmpfs"),
        "{info}"
    );
    assert!(
        !root.join("erofs").exists(),
        "the skipped driver left its home"
    );
}

/// import, create, change, diff, commit, a container of the commit,
/// export, save, rmi and load back, check: image layers as image files,
/// nothing mounted once nothing is in use.
#[test]
fn store_flow_on_erofs() {
    let Some(s) = on_erofs("store_flow_on_erofs") else {
        return;
    };
    s.import_tree(&common::base_tree(&s), "base:1");
    let imgs = images(&s);
    assert_eq!(imgs.len(), 1, "one image for the one layer: {imgs:?}");
    let diff = imgs[0].with_file_name("diff");
    assert_eq!(
        fs::read_dir(&diff).unwrap().count(),
        0,
        "no loose files: the layer is its image"
    );
    assert_eq!(mounts_under(&s.root()), Vec::<String>::new());

    s.ok(&["create", "--name", "one", "base:1"]);
    let m1 = PathBuf::from(s.ok(&["mount", "one"]));
    assert_eq!(
        fs::read(m1.join("var/data/big")).unwrap(),
        vec![7u8; 4 << 20]
    );
    s.change_and_export(&m1, "one");

    s.ok(&["umount", "one"]);
    assert_eq!(
        mounts_under(&s.root()),
        Vec::<String>::new(),
        "unmounting the container takes its layers' images down"
    );
    let committed = s.ok(&["commit", "one", "base:2"]);
    assert_eq!(
        images(&s).len(),
        2,
        "the base and the commit are images (a container's init layer keeps its few files in a directory)"
    );
    s.mount_changed("base:2", "two");
    s.ok(&["umount", "two"]);

    let saved = s.path("saved.tar");
    s.save_then_remove("base:2", &saved, &["one", "two"], &["base:2", "base:1"]);
    assert_eq!(images(&s), Vec::<PathBuf>::new());
    s.ok(&["load", "-i", saved.to_str().unwrap()]);
    let img: Value = serde_json::from_str(&s.ok(&["image", "inspect", "base:2"])).unwrap();
    assert_eq!(img[0]["Id"], committed.as_str(), "{img}");
    s.mount_changed("base:2", "three");
    s.ok(&["umount", "three"]);
    assert_eq!(s.findings(&[]), []);
    assert_eq!(mounts_under(&s.root()), Vec::<String>::new());
}

/// umoci's busybox image (whiteouts of a file and of a directory, a mode
/// change), loaded from skopeo's docker-archive: the container shows
/// umoci's unpack, and save gives back every layer byte for byte.
#[test]
fn load_and_save_keep_every_layer() {
    let test = "load_and_save_keep_every_layer";
    let Some(s) = on_erofs(test) else { return };
    if !have_tools(test, &["umoci", "skopeo", "busybox", "gzip"]) {
        return;
    }
    let work = s.path("fixture");
    fs::create_dir(&work).unwrap();
    let bb = Busybox::build(&work);
    let archive = bb.docker_archive("bb.tar", "busybox:v2");
    s.ok(&["load", "-i", archive.to_str().unwrap()]);
    s.assert_image("busybox:v2", &bb.declared());
    let merged = s.mount_image("busybox:v2");
    assert_same_tree("busybox:v2", &merged, &bb.rootfs("v2"), INIT_PATHS);

    let out = s.path("saved");
    fs::create_dir(&out).unwrap();
    let saved = out.join("saved.tar");
    s.ok(&["save", "-o", saved.to_str().unwrap(), "busybox:v2"]);
    sh(&format!(
        "cd '{}' && tar -xf saved.tar && rm saved.tar",
        out.display()
    ));
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let want = bb.layer_tars();
    assert_eq!(layers.len(), want.len());
    for (l, w) in layers.iter().zip(&want) {
        let got = fs::read(out.join(l.as_str().unwrap())).unwrap();
        assert!(got == *w, "layer {l} is not the tar it was loaded from");
    }
    s.assert_check_clean();
}

/// A container runs on the erofs driver, and its change commits.
#[test]
fn runs_a_container() {
    let test = "erofs runs_a_container";
    let Some(s) = on_erofs(test) else { return };
    if !containers::have_runtime(test) || !have_tools(test, &["busybox"]) {
        return;
    }
    s.busybox();
    let out = s.ok(&[
        "run",
        "--name",
        "c",
        "busybox:test",
        "sh",
        "-c",
        "cat /etc/os-release; echo made > /root/note",
    ]);
    assert!(out.contains("ID=strata-busybox"), "{out}");
    s.ok(&["commit", "c", "noted:1"]);
    let out = s.ok(&["run", "--rm", "noted:1", "cat", "/root/note"]);
    assert_eq!(out, "made");
    s.ok(&["rm", "c"]);
    assert_eq!(mounts_under(&s.root()), Vec::<String>::new());
}

/// A byte of an image's metadata changed on disk, after it was checked
/// and mounted once: the image is not mounted again (the kernel never
/// parses it), the error says which layer, and `check` reports the layer
/// as bad.
#[test]
fn a_changed_image_is_refused_before_the_kernel_sees_it() {
    let Some(s) = on_erofs("a_changed_image_is_refused_before_the_kernel_sees_it") else {
        return;
    };
    let (img, id) = import_base(&s);
    assert_eq!(s.findings(&[]), []);
    // A mount checks it once per boot: the check is recorded beside it
    // (at import, which hashed what it wrote; again by a mount), and a
    // change made afterwards is still seen.
    let stamp = img.with_file_name("layer.erofs.checked");
    assert!(stamp.is_file(), "no {}", stamp.display());
    s.ok(&["create", "--name", "zero", "base:1"]);
    s.ok(&["mount", "zero"]);
    s.ok(&["umount", "zero"]);
    s.ok(&["rm", "zero"]);
    assert!(stamp.is_file(), "no {}", stamp.display());
    // The last block holds inodes: flip a byte of it.
    let at = fs::metadata(&img).unwrap().len() - 4096 + 64;
    flip_byte(&img, at);

    // Creating a container mounts no image (its init layer is written
    // straight into a plain directory); mounting it is refused.
    s.ok(&["create", "--name", "one", "base:1"]);
    let err = s.err(&["mount", "one"]);
    assert!(err.contains("damaged") && err.contains(&id), "{err}");
    assert_eq!(mounts_under(&s.root()), Vec::<String>::new());
    assert_bad_layer(&s, &id);
}

/// A byte of an image's metadata changed beneath the file system, on
/// the device, after the image was checked: its change time stays, so a
/// mount in the same boot would skip the hash; `check` always hashes,
/// reports the layer and drops the record of the check, so the next
/// mount hashes again and refuses it.
#[test]
fn a_change_beneath_the_file_system_is_found_by_check_then_refused() {
    let test = "a_change_beneath_the_file_system_is_found_by_check_then_refused";
    let Some((fs, s)) = on_loop_fs(test, strata_driver::conformance::LoopFs::ext4) else {
        return;
    };
    let (img, id) = import_base(&s);
    let stamp = img.with_file_name("layer.erofs.checked");
    assert!(stamp.is_file(), "no {}", stamp.display());
    // The last block holds inodes: flip a byte of it on the device.
    let len = fs::metadata(&img).unwrap().len();
    flip_byte(&fs.image(), physical_offset(&img, len - 4096 + 64));
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();

    assert_bad_layer(&s, &id);
    assert!(
        !stamp.exists(),
        "the record of the check outlived the damage"
    );
    s.ok(&["create", "--name", "one", "base:1"]);
    let err = s.err(&["mount", "one"]);
    assert!(err.contains("damaged") && err.contains(&id), "{err}");
    assert_eq!(mounts_under(&s.root()), Vec::<String>::new());
}

/// An erofs store on a loop-mounted ext4 that `make` makes, for tests
/// that reach the image files' blocks on its device (`filefrag`); `None`
/// (SKIPPED) where that cannot be had.
fn on_loop_fs(
    test: &str,
    make: fn() -> Option<strata_driver::conformance::LoopFs>,
) -> Option<(strata_driver::conformance::LoopFs, Strata)> {
    if on_erofs(test).is_none() || !have_tools(test, &["filefrag", "mkfs.ext4"]) {
        return None;
    }
    let fs = make()?;
    let s = Strata {
        dir: tempfile::tempdir_in(fs.path()).unwrap(),
        driver: "erofs",
    };
    Some((fs, s))
}

/// Imports the base tree as `base:1`: its one image file, and the id of
/// the layer that holds it.
fn import_base(s: &Strata) -> (PathBuf, String) {
    s.import_tree(&common::base_tree(s), "base:1");
    let img = images(s).remove(0);
    let id = img
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (img, id)
}

/// `check` reports layer `id` as bad.
fn assert_bad_layer(s: &Strata, id: &str) {
    let found = s.findings(&[]);
    assert!(
        found
            .iter()
            .any(|(kind, object, _)| kind == "bad-layer" && object == id),
        "{found:?}"
    );
}

/// Flips the bits of byte `at` of `file` (an image, or the device a file
/// system lives on), durably.
fn flip_byte(file: &Path, at: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    f.sync_all().unwrap();
}

/// The physical byte offset of byte `at` of `file` on its file system's
/// device (`filefrag -v`, 4 KiB blocks).
fn physical_offset(file: &Path, at: u64) -> u64 {
    let out = sh(&format!("filefrag -v -b4096 '{}'", file.display()));
    let block = at / 4096;
    for line in out.lines() {
        // " 0:  0..  10:  34816..  34826:  11: ..."
        let fields: Vec<&str> = line
            .split([':', ' ', '.'])
            .filter(|f| !f.is_empty())
            .collect();
        if fields.len() < 5 || fields[0].parse::<u64>().is_err() {
            continue;
        }
        let (Ok(lstart), Ok(lend), Ok(pstart)) = (
            fields[1].parse::<u64>(),
            fields[2].parse::<u64>(),
            fields[3].parse::<u64>(),
        ) else {
            continue;
        };
        if (lstart..=lend).contains(&block) {
            return (pstart + block - lstart) * 4096 + at % 4096;
        }
    }
    panic!(
        "no extent holds block {block} of {}:\n{out}",
        file.display()
    );
}

/// `--storage-opt erofs.verity=on` on an ext4 with fs-verity: images are
/// sealed as they are written and their digests recorded; `info` says
/// so. A block of file content changed on the device behind the file
/// system's back makes reading it fail (the metadata digest could not
/// see it), and `check --verify-digests` names the layer. On a file
/// system without fs-verity, `info` says so and images are written as
/// without it (the next test).
///
/// Ignored by default: it needs a kernel with fs-verity
/// (CONFIG_FS_VERITY), which the kernels this suite runs on in CI lack.
/// Run it with `cargo test -p strata-cli --test erofs -- --ignored`
/// where the kernel has it; elsewhere it says SKIPPED.
#[test]
#[ignore = "needs a kernel built with CONFIG_FS_VERITY"]
fn verity_seals_images_and_a_changed_block_cannot_be_read() {
    let test = "verity_seals_images_and_a_changed_block_cannot_be_read";
    if !kernel_has_verity() {
        skip(test, "the kernel has no fs-verity (CONFIG_FS_VERITY)");
        return;
    }
    let Some((fs, s)) = on_loop_fs(test, strata_driver::conformance::LoopFs::ext4_verity) else {
        return;
    };
    let info = s.ok(&["--storage-opt", "erofs.verity=on", "info"]);
    assert!(info.contains("fs-verity: on"), "{info}");
    s.import_tree(&common::base_tree(&s), "base:1");
    let img = images(&s).remove(0);
    let meta = fs::read_to_string(img.with_file_name("layer.erofs.meta")).unwrap();
    let verity = meta.split_whitespace().nth(3).unwrap();
    assert_eq!(verity.len(), 64, "a recorded fs-verity digest: {meta}");
    // Sealed: not even root may write it.
    let err = fs::OpenOptions::new().write(true).open(&img).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_eperm()), "{err}");
    // Remembered: a later command without the option still seals.
    let info = s.ok(&["info"]);
    assert!(info.contains("fs-verity: on"), "{info}");

    // Block 1 of the image is the first block of file content (the 4 MiB
    // file `var/data/big`, all sevens).
    let at = physical_offset(&img, 4096 + 100);
    let dev = fs::OpenOptions::new().write(true).open(fs.image()).unwrap();
    dev.write_all_at(b"not sevens", at).unwrap();
    dev.sync_all().unwrap();
    drop(dev);
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();

    s.ok(&["create", "--name", "one", "base:1"]);
    let m = PathBuf::from(s.ok(&["mount", "one"]));
    let read = fs::read(m.join("var/data/big"));
    assert!(read.is_err(), "a changed block was read");
    assert_eq!(
        fs::read_to_string(m.join("etc/os-release")).unwrap(),
        "ID=strata-test\n",
        "the blocks that were not changed read"
    );
    s.ok(&["umount", "one"]);
    let found = s.findings(&["--verify-digests"]);
    assert!(
        found.iter().any(|(kind, _, _)| kind == "digest-mismatch"),
        "{found:?}"
    );
}

/// Whether the running kernel was built with fs-verity, as its config
/// says (`/proc/config.gz` is not always there; `/boot/config-*` is on
/// Debian).
fn kernel_has_verity() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    fs::read_to_string(format!("/boot/config-{}", release.trim()))
        .is_ok_and(|c| c.lines().any(|l| l == "CONFIG_FS_VERITY=y"))
}

/// EPERM, as the kernel gives it for a write to a sealed file.
fn libc_eperm() -> i32 {
    1
}

/// Asked for where the file system has no fs-verity: `info` says so,
/// and images are written and checked as without it.
#[test]
fn verity_asked_for_without_support_says_so_and_carries_on() {
    let Some(s) = on_erofs("verity_asked_for_without_support_says_so_and_carries_on") else {
        return;
    };
    let info = s.ok(&["--storage-opt", "erofs.verity=on", "info"]);
    if info.contains("fs-verity: on") {
        eprintln!("the temporary directory's file system has fs-verity: nothing to show here");
        return;
    }
    assert!(
        info.contains("fs-verity: asked for, not available"),
        "{info}"
    );
    s.import_tree(&common::base_tree(&s), "base:1");
    let img = images(&s).remove(0);
    let meta = fs::read_to_string(img.with_file_name("layer.erofs.meta")).unwrap();
    assert_eq!(meta.split_whitespace().nth(3), Some("-"), "{meta}");
    let m = s.mount_image("base:1");
    assert_eq!(
        fs::read(m.join("var/data/big")).unwrap(),
        vec![7u8; 4 << 20]
    );
    let err = s.err(&["--storage-opt", "erofs.verity=maybe", "info"]);
    assert!(err.contains("want on or off"), "{err}");
    let err = s.err(&["--storage-opt", "erofs.other=1", "info"]);
    assert!(err.contains("no storage option erofs.other"), "{err}");
}

/// The objects of the object store, by name.
fn objects(s: &Strata) -> Vec<String> {
    let dir = s.root().join("erofs/objects");
    let mut out = Vec::new();
    for sub in fs::read_dir(&dir).unwrap().flatten() {
        if !sub.file_type().unwrap().is_dir() {
            continue;
        }
        for o in fs::read_dir(sub.path()).unwrap().flatten() {
            out.push(format!(
                "{}{}",
                sub.file_name().to_string_lossy(),
                o.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// Object mode (`--storage-opt erofs.objects=on`): file content goes to
/// the object store once, whatever layer or image holds it; the images
/// hold metadata. Containers read, change and commit as before; save
/// gives back the layers byte for byte (another store loads them with
/// the same IDs); removing an image removes the objects nothing else
/// names; check finds and removes an object nothing names.
#[test]
fn object_mode_stores_shared_content_once() {
    let Some(s) = on_erofs("object_mode_stores_shared_content_once") else {
        return;
    };
    let info = s.ok(&["--storage-opt", "erofs.objects=on", "info"]);
    assert!(info.contains("Objects: on"), "{info}");
    let base = common::base_tree(&s);
    s.import_tree(&base, "a:1");
    fs::write(base.join("etc/extra"), "e".repeat(1000)).unwrap();
    let b_id = s.import_tree(&base, "b:1");
    // The 4 MiB file is one object for both images; `extra` another;
    // files of 64 bytes or less stay in their images.
    let stored = objects(&s);
    assert_eq!(stored.len(), 2, "{stored:?}");
    for img in images(&s) {
        assert!(
            fs::metadata(&img).unwrap().len() < 64 << 10,
            "{} holds content",
            img.display()
        );
    }

    s.ok(&["create", "--name", "one", "b:1"]);
    let m = PathBuf::from(s.ok(&["mount", "one"]));
    assert_eq!(
        fs::read(m.join("var/data/big")).unwrap(),
        vec![7u8; 4 << 20]
    );
    assert_eq!(fs::read(m.join("etc/extra")).unwrap(), vec![b'e'; 1000]);
    s.change_and_export(&m, "one");
    // A change to a file whose content is an object: a whole copy up.
    fs::write(m.join("var/data/big"), "short now").unwrap();
    s.ok(&["umount", "one"]);
    s.ok(&["commit", "one", "b:2"]);
    let m2 = s.mount_changed("b:2", "two");
    assert_eq!(fs::read(m2.join("var/data/big")).unwrap(), b"short now");
    s.ok(&["umount", "two"]);
    assert_eq!(s.findings(&[]), []);

    // Saved from the object store, loaded by an overlay2 store: the
    // same image.
    let saved = s.path("b.tar");
    s.ok(&["save", "-o", saved.to_str().unwrap(), "b:1"]);
    let other = Strata::new("overlay2");
    other.ok(&["load", "-i", saved.to_str().unwrap()]);
    let img: Value = serde_json::from_str(&other.ok(&["image", "inspect", "b:1"])).unwrap();
    assert_eq!(img[0]["Id"], b_id.as_str(), "{img}");

    // An object nothing names (what a cut write leaves), found and
    // removed by check.
    let stray = s.root().join("erofs/objects/00");
    fs::create_dir_all(&stray).unwrap();
    fs::write(stray.join("a".repeat(62)), "stray").unwrap();
    let found = s.findings(&[]);
    assert!(
        found
            .iter()
            .any(|(k, o, _)| k == "debris" && o.contains(&"a".repeat(62))),
        "{found:?}"
    );
    s.findings(&["--repair"]);
    assert_eq!(s.findings(&[]), []);

    // Removing a:1 keeps what b:1 names; removing everything leaves no
    // object.
    s.ok(&["rmi", "a:1"]);
    assert_eq!(objects(&s), stored);
    s.ok(&["rm", "-f", "one", "two"]);
    s.ok(&["rmi", "b:2", "b:1"]);
    assert_eq!(objects(&s), Vec::<String>::new());
    assert_eq!(mounts_under(&s.root()), Vec::<String>::new());
}

/// A driver option given to a command that only reads the store is kept
/// all the same (the command opens the store to write it), and later
/// commands go by it.
#[test]
fn an_option_given_to_a_reading_command_is_kept() {
    let Some(s) = on_erofs("an_option_given_to_a_reading_command_is_kept") else {
        return;
    };
    s.import_tree(&common::base_tree(&s), "a:1");
    assert!(s.ok(&["info"]).contains("Objects: off"));
    s.ok(&["--storage-opt", "erofs.objects=on", "images"]);
    assert!(s.ok(&["info"]).contains("Objects: on"));
    s.ok(&["--storage-opt", "erofs.objects=off", "images"]);
    assert!(s.ok(&["info"]).contains("Objects: off"));
}
