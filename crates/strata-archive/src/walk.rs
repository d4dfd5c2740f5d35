//! One path lookup inside a root, as a chroot resolves it: `..` at the
//! root stays at the root, an absolute symlink target starts again at the
//! root, at most [`MAX_SYMLINKS`] symlinks are followed. The walk keeps
//! the directories entered; the caller looks each name up in its own tree
//! (directory handles on disk, an image being written) and says what it
//! found there.

/// Linux's own limit on symlinks followed in one lookup.
pub const MAX_SYMLINKS: usize = 40;

/// More than [`MAX_SYMLINKS`] symlinks on one path (`ELOOP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyLinks;

/// A lookup in progress: `D` is the caller's handle on a directory.
pub struct Walk<D> {
    /// The directories entered, the root first.
    stack: Vec<D>,
    /// The name of each directory of `stack` but the root.
    names: Vec<Vec<u8>>,
    /// The components still to look up, the next one last.
    todo: Vec<Vec<u8>>,
    links: usize,
}

impl<D> Walk<D> {
    /// A lookup of `comps` from `root`.
    pub fn new(root: D, comps: &[Vec<u8>]) -> Self {
        Walk {
            stack: vec![root],
            names: Vec::new(),
            todo: comps.iter().rev().cloned().collect(),
            links: 0,
        }
    }

    /// The next name to look up in [`Walk::dir`]; `None` once the path is
    /// resolved. Empty names, `.` and `..` are taken here.
    pub fn next_name(&mut self) -> Option<Vec<u8>> {
        while let Some(c) = self.todo.pop() {
            match c.as_slice() {
                b"" | b"." => {}
                b".." => {
                    if self.stack.len() > 1 {
                        self.stack.pop();
                        self.names.pop();
                    }
                }
                _ => return Some(c),
            }
        }
        None
    }

    /// The directory the next name is looked up in.
    pub fn dir(&self) -> &D {
        self.stack.last().expect("the walk always holds the root")
    }

    /// `name` is the directory `dir`: the walk goes on in it.
    pub fn enter(&mut self, dir: D, name: Vec<u8>) {
        self.stack.push(dir);
        self.names.push(name);
    }

    /// `name` is to be looked up again (the caller raced with another).
    pub fn again(&mut self, name: Vec<u8>) {
        self.todo.push(name);
    }

    /// The name just looked up is a symlink to `target`: the walk goes on
    /// through the target, from the root when it is absolute.
    pub fn follow(&mut self, target: &[u8]) -> Result<(), TooManyLinks> {
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(TooManyLinks);
        }
        if target.first() == Some(&b'/') {
            self.stack.truncate(1);
            self.names.clear();
        }
        for part in target.split(|b| *b == b'/').rev() {
            self.todo.push(part.to_vec());
        }
        Ok(())
    }

    /// The directory reached, and the names leading to it from the root
    /// (no symlink among them).
    pub fn finish(mut self) -> (D, Vec<Vec<u8>>) {
        let dir = self.stack.pop().expect("the walk always holds the root");
        (dir, self.names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of directories and symlinks, by path.
    fn resolve(path: &str, links: &[(&str, &str)]) -> Result<String, TooManyLinks> {
        let comps: Vec<Vec<u8>> = path.split('/').map(|c| c.as_bytes().to_vec()).collect();
        let mut w = Walk::new(String::new(), &comps);
        while let Some(name) = w.next_name() {
            let here = format!("{}/{}", w.dir(), String::from_utf8(name.clone()).unwrap());
            match links.iter().find(|(l, _)| *l == here) {
                Some((_, target)) => w.follow(target.as_bytes())?,
                None => w.enter(here, name),
            }
        }
        Ok(w.finish().0)
    }

    #[test]
    fn symlinks_resolve_as_in_a_chroot() {
        assert_eq!(resolve("a/./b//c", &[]).unwrap(), "/a/b/c");
        assert_eq!(resolve("../../a/..", &[]).unwrap(), "");
        let links = [("/var/run", "/run"), ("/up", "../../.."), ("/rel", "x/y")];
        assert_eq!(resolve("var/run/lock", &links).unwrap(), "/run/lock");
        assert_eq!(resolve("up/etc", &links).unwrap(), "/etc");
        assert_eq!(resolve("rel/z", &links).unwrap(), "/x/y/z");
        let looping = [("/a", "/b"), ("/b", "a")];
        assert_eq!(resolve("a/x", &looping), Err(TooManyLinks));
    }
}
