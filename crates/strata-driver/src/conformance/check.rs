//! The check capability ([`crate::Check`]): what `strata check` asks of
//! a driver that checks its own layout.

use std::collections::BTreeMap;

use super::harness::{chain, Factory, Harness};
use crate::check::Parents;

/// A driver with a checker lists exactly the layers it holds (made, not
/// yet removed, mounted or not), and on a healthy home, given each
/// layer's true parents, finds nothing.
pub fn check_lists_layers_and_finds_nothing_when_healthy(f: Factory) {
    let h = Harness::new(f);
    let Some(check) = h.driver().checker() else {
        h.finish();
        return;
    };
    h.create_base();
    h.create("mid", Some("base"));
    h.create_rw("ctr", Some("mid"));
    h.create("gone", Some("base"));
    h.remove("gone");
    h.get("ctr");
    let listing = check
        .list()
        .unwrap_or_else(|e| panic!("list: {}", chain(&e)));
    let mut ids: Vec<&str> = listing.layers.iter().map(|l| l.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["base", "ctr", "mid"], "the layers list() gives");
    assert!(
        listing.debris.is_empty(),
        "debris in a healthy home: {:?}",
        listing.debris
    );
    let parents: BTreeMap<String, Parents> = [
        ("base", vec![]),
        ("mid", vec!["base"]),
        ("ctr", vec!["mid", "base"]),
    ]
    .into_iter()
    .map(|(id, p)| {
        (
            id.to_owned(),
            Ok(p.into_iter().map(str::to_owned).collect()),
        )
    })
    .collect();
    let mut shared = Vec::new();
    check
        .check_shared(&mut |f| shared.push(f))
        .unwrap_or_else(|e| panic!("check_shared: {}", chain(&e)));
    assert!(
        shared.is_empty(),
        "check_shared on a healthy home: {shared:?}"
    );
    let mut layers = Vec::new();
    check
        .check_layers(&parents, &mut |f| layers.push(f))
        .unwrap_or_else(|e| panic!("check_layers: {}", chain(&e)));
    assert!(
        layers.is_empty(),
        "check_layers on a healthy home: {layers:?}"
    );
    h.put("ctr");
    h.finish();
}
