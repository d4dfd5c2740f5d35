//! The conformance suite: the behaviours every [`Driver`](crate::Driver) must show, one
//! public function per behaviour, each given a [`Factory`] that opens the
//! driver on a home directory. A driver's tests generate one `#[test]`
//! per function (see `tests/conformance.rs` for the macro).
//!
//! The behaviours are moby's graphdriver tests (`graphtest`) and the
//! layer rules of containerd's snapshotter suite; each function's doc
//! names its source. Every function runs in a fresh temporary directory
//! and leaves nothing mounted, even when a check fails: its [`Harness`]
//! runs the driver's `cleanup` and then unmounts whatever is still
//! mounted under the directory. The suite needs root (mounts, `chown`,
//! device nodes); callers check [`require_root`] first.
//!
//! | module | behaviours |
//! |---|---|
//! | `content` | what a layer shows: empty layers, every file type, copy-up, whiteouts, opaque directories, deep chains |
//! | `diffs` | diff / apply_diff / changes / diff_size, within a driver and across two |
//! | `check` | the check capability: layers listed, a healthy home clean |
//! | `lifecycle` | get/put counts, cleanup, status, bad, duplicate and missing ids |
//! | `quota` | size limits enforced (`EDQUOT`), or refused with the reason |

mod check;
mod content;
mod diffs;
mod fixture;
mod harness;
mod lifecycle;
mod loopfs;
mod quota;
use strata_test_support::tree;

pub use check::*;
pub use content::*;
pub use diffs::*;
pub use fixture::random_bytes;
pub use harness::{
    chain, is_mounted, mounts_under, open_backend, require, require_root, Factory, Harness,
    MakeDriver, On,
};
pub use lifecycle::*;
pub use loopfs::LoopFs;
pub use quota::*;
pub use tree::{all_xattrs, assert_same, manifest, Tree};
