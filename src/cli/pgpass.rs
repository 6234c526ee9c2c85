//! `mcp-operator pgpass --from SECRET_FILE --to FILE`: the init container of a registry API pod
//! that uses a pgpass Secret. A Secret volume's files belong to root and cannot be made private
//! to the pod's user, while libpq ignores a password file others can read: this copies the file
//! into an `emptyDir` as the pod's user, mode 0600. The contents are never printed.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Copy a password file to FILE, readable by this user only (mode 0600).
#[derive(Debug, Clone, clap::Args)]
pub struct PgpassArgs {
    /// The file to copy (the mounted Secret key).
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,
    /// Where to write it.
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
}

pub fn run(args: PgpassArgs) -> i32 {
    match copy_private(&args.from, &args.to) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "error: cannot copy {} to {}: {e}",
                args.from.display(),
                args.to.display()
            );
            1
        }
    }
}

/// Writes `from`'s bytes to `to` with mode 0600, through a temporary file created with that mode
/// (the password is never in a file with wider rights, not even for a moment).
pub fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(from)?;
    let tmp = to.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_private_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("secret");
        let to = dir.path().join("out/.pgpass");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&from, b"db:5432:registry:app:s3cr3t\n").unwrap();
        copy_private(&from, &to).unwrap();
        assert_eq!(
            std::fs::read(&to).unwrap(),
            b"db:5432:registry:app:s3cr3t\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&to).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Run again (a restarted init container): replaced, still private.
        std::fs::write(&from, b"new\n").unwrap();
        copy_private(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"new\n");
        // A missing Secret key says which file, never what is in any.
        let err = run(PgpassArgs {
            from: dir.path().join("nope"),
            to,
        });
        assert_eq!(err, 1);
    }
}
