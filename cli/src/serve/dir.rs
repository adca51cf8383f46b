//! The served directory: which names are artifacts, listing them, reading one.
//!
//! Only files directly in the directory are served, by a name of letters, digits, `.`, `_` and
//! `-` that does not start with `.`: no path separator, no `..`, no hidden file, no symlink
//! (it could point outside the directory).

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why an artifact cannot be served; the message names what was asked for and what was wrong.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The name is not one this server would ever serve (HTTP 400).
    BadName(String),
    /// No such artifact in the directory (HTTP 404).
    NotFound(String),
    /// It exists but could not be read (HTTP 500).
    Unreadable(String),
}

/// One artifact as the index lists it.
#[derive(Debug)]
pub(super) struct Listed {
    pub(super) name: String,
    pub(super) bytes: u64,
    pub(super) modified: SystemTime,
    /// The timeline's title ("GET /messages · trace 4bf9…"), when the file starts like one.
    pub(super) title: Option<String>,
}

/// A directory of artifacts.
#[derive(Debug, Clone)]
pub(super) struct ArtifactDir {
    dir: PathBuf,
}

impl ArtifactDir {
    /// The directory at `dir`, which must exist and be listable.
    pub(super) fn open(dir: &Path) -> Result<ArtifactDir, String> {
        let meta = fs::metadata(dir).map_err(|e| {
            format!(
                "cannot serve {}: {e} (expected the artifact directory, GRANULAR_ARTIFACT_DIR)",
                dir.display()
            )
        })?;
        if !meta.is_dir() {
            return Err(format!(
                "cannot serve {}: not a directory (expected the artifact directory, GRANULAR_ARTIFACT_DIR)",
                dir.display()
            ));
        }
        fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        Ok(ArtifactDir {
            dir: dir.to_path_buf(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// The artifacts, newest first (a file that vanishes meanwhile is left out).
    pub(super) fn list(&self) -> Result<Vec<Listed>, String> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        let mut listed: Vec<Listed> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                valid_name(&name).ok()?;
                let meta = fs::symlink_metadata(e.path()).ok()?;
                if !meta.is_file() {
                    return None;
                }
                Some(Listed {
                    title: super::title::read(&e.path()),
                    name,
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        listed.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
        Ok(listed)
    }

    /// The path of artifact `name`, if it is one.
    pub(super) fn find(&self, name: &str) -> Result<PathBuf, Refusal> {
        valid_name(name).map_err(Refusal::BadName)?;
        let path = self.dir.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(path),
            Ok(_) => Err(Refusal::NotFound(format!(
                "{name:?} in {} is not a regular file",
                self.dir.display()
            ))),
            Err(_) => Err(Refusal::NotFound(format!(
                "no artifact named {name:?} in {}",
                self.dir.display()
            ))),
        }
    }

    /// The bytes of artifact `name`.
    pub(super) fn read(&self, name: &str) -> Result<Vec<u8>, Refusal> {
        let path = self.find(name)?;
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Refusal::Unreadable(format!("cannot read {}: {e}", path.display())))?;
        Ok(bytes)
    }
}

/// Whether `name` may name an artifact; the error says why not.
fn valid_name(name: &str) -> Result<(), String> {
    let expected = "expected the file name of an artifact directly in the directory \
                    (letters, digits, '.', '_', '-'; not starting with '.')";
    if name.is_empty() {
        return Err(format!("empty artifact name: {expected}"));
    }
    if name.starts_with('.') {
        return Err(format!(
            "artifact name {name:?} starts with '.': {expected}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("artifact name {name:?} contains {c:?}: {expected}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("granular-cli-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Names that could reach outside the directory are refused before the file system is
    /// touched.
    #[test]
    fn traversal_and_hidden_names_are_refused() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/b",
            ".hidden",
            "a b",
            "a\\b",
            "%2e%2e",
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            valid_name("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7.perfetto-trace"),
            Ok(())
        );
    }

    #[test]
    fn only_regular_files_directly_inside_are_served_newest_first() {
        let dir = temp_dir("list");
        fs::write(dir.join("old.perfetto-trace"), b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(dir.join("new.perfetto-trace"), b"xy").unwrap();
        fs::create_dir(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        fs::write(dir.join(".hidden"), b"").unwrap();
        let d = ArtifactDir::open(&dir).unwrap();
        let names: Vec<String> = d.list().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["new.perfetto-trace", "old.perfetto-trace"]);
        assert_eq!(d.read("new.perfetto-trace"), Ok(b"xy".to_vec()));
        assert!(matches!(d.read("link"), Err(Refusal::NotFound(_))));
        assert!(matches!(d.read("sub"), Err(Refusal::NotFound(_))));
        assert!(matches!(d.read("missing"), Err(Refusal::NotFound(m)) if m.contains("missing")));
        assert!(matches!(d.read("../x"), Err(Refusal::BadName(_))));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = ArtifactDir::open(Path::new("/nonexistent/granular")).unwrap_err();
        assert!(err.contains("/nonexistent/granular"), "{err}");
        assert!(err.contains("GRANULAR_ARTIFACT_DIR"), "{err}");
    }
}
