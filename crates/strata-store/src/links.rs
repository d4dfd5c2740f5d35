//! Symlinks in a container path resolved by hand, the way the kernel's
//! lookup does it, for callers that must see through the container's
//! mounts before the runtime has made them (`cp` and `run`'s 126/127).
//!
//! The walk goes component by component; the caller looks at the path
//! walked so far (never following it on the host) and says whether it is
//! a symlink. A symlink's target is walked again in its place: from the
//! container's `/` when absolute, from the symlink's directory otherwise;
//! `..` stops at `/`. What each component *is* (in which mount, through
//! which directory handle) is the caller's business.

/// Linux's own limit on symlinks followed in one lookup.
pub const MAX_SYMLINKS: usize = 40;

/// What the path walked so far is, as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not a symlink, or nothing there: walk on.
    On,
    /// A symlink with this target, walked again in its place.
    Link(Vec<u8>),
    /// Walk no further: the components not walked yet are kept as given.
    Stop,
}

/// Walks `components` (in order, as `/`-split), asking `look(done, last)`
/// what the path walked so far is; `last` when no component is left.
/// Returns the components reached, with those after a [`Step::Stop`]
/// appended as given, or `None` when more than [`MAX_SYMLINKS`] symlinks
/// were followed (the kernel's `ELOOP`).
pub fn resolve_links<E>(
    components: Vec<Vec<u8>>,
    mut look: impl FnMut(&[Vec<u8>], bool) -> Result<Step, E>,
) -> Result<Option<Vec<Vec<u8>>>, E> {
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut todo = components;
    todo.reverse();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        match look(&done, todo.is_empty())? {
            Step::On => {}
            Step::Stop => break,
            Step::Link(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Ok(None);
                }
                done.pop();
                if target.first() == Some(&b'/') {
                    done.clear();
                }
                todo.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
            }
        }
    }
    done.extend(todo.into_iter().rev());
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::convert::Infallible;

    use super::*;

    fn split(p: &str) -> Vec<Vec<u8>> {
        p.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    fn joined(c: &[Vec<u8>]) -> String {
        format!("/{}", String::from_utf8_lossy(&c.join(&b'/')))
    }

    /// Resolves `path` in a tree that is only the symlinks `links`, stopping
    /// at `stop`.
    fn resolve(links: &[(&str, &str)], stop: &str, path: &str) -> Option<String> {
        let links: HashMap<_, _> = links.iter().copied().collect();
        let found = resolve_links(split(path), |done, _| {
            let here = joined(done);
            Ok::<_, Infallible>(match links.get(here.as_str()) {
                _ if here == stop => Step::Stop,
                Some(t) => Step::Link(t.as_bytes().to_vec()),
                None => Step::On,
            })
        });
        found.unwrap().map(|c| joined(&c))
    }

    #[test]
    fn links_are_walked_again_in_their_place() {
        let links = [
            ("/a", "b"),
            ("/abs", "/x/y"),
            ("/x/up", "../.."),
            ("/x/rel", "../a"),
        ];
        let table = [
            ("plain path", "/p/q", "/p/q"),
            ("relative target", "/a/f", "/b/f"),
            ("absolute target", "/d/../abs/f", "/x/y/f"),
            ("dot-dot stops at the root", "/x/up/x/up/f", "/f"),
            ("target through another link", "/x/rel/f", "/b/f"),
            ("empty and dot components", "//./p/./q", "/p/q"),
            ("rest kept after a stop", "/s/../../a", "/s/../../a"),
        ];
        for (name, path, want) in table {
            assert_eq!(resolve(&links, "/s", path).as_deref(), Some(want), "{name}");
        }
    }

    #[test]
    fn the_last_component_is_said_to_be_last() {
        let mut seen = Vec::new();
        let _ = resolve_links(split("/a/b"), |done, last| {
            seen.push((joined(done), last));
            Ok::<_, Infallible>(Step::On)
        });
        assert_eq!(
            seen,
            [("/a".to_string(), false), ("/a/b".to_string(), true)]
        );
    }

    #[test]
    fn more_symlinks_than_the_kernel_follows_is_a_loop() {
        assert_eq!(resolve(&[("/l", "l")], "", "/l"), None);
        // Exactly the limit is still followed.
        let chain: Vec<(String, String)> = (0..MAX_SYMLINKS)
            .map(|i| (format!("/l{i}"), format!("l{}", i + 1)))
            .collect();
        let chain: Vec<(&str, &str)> = chain
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let end = format!("/l{MAX_SYMLINKS}");
        assert_eq!(resolve(&chain, "", "/l0"), Some(end));
    }
}
