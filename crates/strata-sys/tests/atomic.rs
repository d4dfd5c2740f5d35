//! `atomic::sync_paths`: every path synced at once, an error naming the
//! path that failed.

use std::fs;

#[test]
fn sync_paths_syncs_files_and_directories_and_names_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    fs::create_dir(&dir).unwrap();
    let mut all = vec![dir.clone(), tmp.path().to_path_buf()];
    for i in 0..20 {
        let f = dir.join(format!("f{i}"));
        fs::write(&f, format!("{i}")).unwrap();
        all.push(f);
    }
    strata_sys::atomic::sync_paths(&all).unwrap();
    strata_sys::atomic::sync_paths::<&std::path::Path>(&[]).unwrap();
    strata_sys::atomic::sync_paths(&[&all[2]]).unwrap();

    let gone = dir.join("gone");
    all.insert(5, gone.clone());
    let err = strata_sys::atomic::sync_paths(&all).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&gone.display().to_string()),
        "{err}"
    );
}
