//! The files this program writes: never through a link, never into a special file, owner-only.
//!
//! The profile is a directory other programs (and careless operators) can put things in. A
//! symbolic link planted as `executor.pid`, `executor.log`, `chrome.json.tmp`, the spool or a
//! marker would make a plain `open` write our content into the file it points to (truncating it,
//! or creating it when it dangles); a FIFO would make the open or the write hang. So every file
//! the program writes goes through this module, which:
//!
//! - opens with `O_NOFOLLOW` (a link as the last component is refused by the kernel, without a
//!   race between a check and the open) and `O_NONBLOCK` (opening a FIFO cannot hang);
//! - checks that the opened handle is a regular file before a byte is written (a FIFO or a
//!   device opened anyway is refused) and only then truncates, when the caller asked for a new
//!   content;
//! - creates files `0600` and directories `0700` (they hold cookies, jobs and the log);
//! - replaces a whole file atomically through `<name>.tmp` and a rename, after checking that
//!   what it replaces is a regular file (a link in its place is refused, not silently replaced).
//!
//! Reading is held to the same rules where it could hang or run away: [`open_for_reading`]
//! opens with `O_NONBLOCK` (a FIFO cannot hang the open) and `O_NOFOLLOW` for the profile's own
//! files, accepts only a regular file (a FIFO, `/dev/zero` or a directory is refused before a
//! read), and the `read_*` functions take at most a stated number of bytes, so a huge or endless
//! file can neither hang a command nor fill its memory.
//!
//! A refusal is an [`std::io::Error`] whose message says what was found ("is a symbolic link…",
//! "is a FIFO, not a regular file"); the caller names the file, as it already does for any other
//! I/O error. Renaming and removing never follow a link, so log rotation and removals need no
//! help here. The SQLite store checks its files with [`require_absent_or_regular`] and
//! creates the database with [`Write::CreateNew`] before SQLite opens it, SQLite itself opening
//! with `O_NOFOLLOW` and giving its `-wal` and `-shm` files the database's mode.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file we create (the umask can only take bits away).
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory we create: the profile and its subdirectories.
pub const DIR_MODE: u32 = 0o700;

/// Why a path was refused. Carried inside an [`io::Error`] of kind `InvalidInput`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("is a symbolic link (refused: files here are never followed elsewhere)")]
    Symlink,
    #[error("is {found}, not a {wanted} (refused)")]
    WrongKind {
        found: &'static str,
        wanted: &'static str,
    },
    #[error("is {size} bytes, more than the {limit} read here (refused)")]
    TooLarge { size: u64, limit: u64 },
    #[error("is not UTF-8 text")]
    NotText,
}

impl From<Refused> for io::Error {
    fn from(refused: Refused) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, refused)
    }
}

/// The refusal inside `err`, if it is one (to word it for the file at hand).
pub fn refused(err: &io::Error) -> Option<&Refused> {
    err.get_ref()?.downcast_ref()
}

/// Can a file be created in the directory `dir`? A probe file is created and removed. Created new
/// (O_EXCL): whatever already has its name, a link included, is never opened; one left by a
/// crash of a process with our pid is removed (the link, not its target).
pub fn write_probe(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    let create = || open_for_writing(&probe, Write::CreateNew);
    create().or_else(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&probe)?;
            create()
        }
        _ => Err(e),
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// How a file is opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Appended to, created if absent (the log, the spool).
    Append,
    /// Read and written, created if absent, its content kept (the lock).
    Update,
    /// Created if absent, emptied once known to be a regular file (a marker, a temp file).
    Replace,
    /// Created; an existing entry of any kind is `AlreadyExists` (a probe, the STOP switch).
    CreateNew,
}

/// What kind of entry `metadata` (from `symlink_metadata`) describes, for messages.
pub fn kind_of(metadata: &Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// `Err` unless `metadata` (from `symlink_metadata` or an open handle) is a regular file.
fn require_regular(metadata: &Metadata) -> Result<(), Refused> {
    if metadata.file_type().is_symlink() {
        Err(Refused::Symlink)
    } else if metadata.is_file() {
        Ok(())
    } else {
        Err(Refused::WrongKind {
            found: kind_of(metadata),
            wanted: "regular file",
        })
    }
}

/// `Ok` when nothing is at `path` or a regular file is (not a link to one): for paths that
/// another program opens (SQLite) or that a rename replaces.
pub fn require_absent_or_regular(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => Ok(require_regular(&metadata)?),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// A failed open explained: a link or a special file at `path` says so (the kernel's ELOOP,
/// EISDIR or ENXIO say it less clearly); anything else is the error as it was.
fn explain(path: &Path, err: io::Error) -> io::Error {
    if err.kind() == io::ErrorKind::AlreadyExists {
        return err;
    }
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => match require_regular(&metadata) {
            Err(refused) => refused.into(),
            Ok(()) => err,
        },
        Err(_) => err,
    }
}

/// Opens `path` for writing as `how` says: never through a link, never a special file, created
/// `0600`. See the module docs.
pub fn open_for_writing(path: &Path, how: Write) -> io::Result<File> {
    let mut options = OpenOptions::new();
    match how {
        Write::Append => options.append(true).create(true),
        Write::Update => options.read(true).write(true).create(true),
        Write::Replace => options.write(true).create(true),
        Write::CreateNew => options.write(true).create_new(true),
    };
    // O_NONBLOCK only matters for what the check below refuses anyway (a FIFO, a device): on a
    // regular file reads and writes behave as without it.
    options
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = options.open(path).map_err(|err| explain(path, err))?;
    let metadata = file.metadata()?;
    require_regular(&metadata)?;
    // A file made by an older version, or by hand, may be readable by others: ours are not.
    if metadata.permissions().mode() & 0o077 != 0 {
        let _ = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE));
    }
    if how == Write::Replace {
        file.set_len(0)?;
    }
    Ok(file)
}

/// Writes `contents` as the whole of `path` (a marker): see [`open_for_writing`].
pub fn write_whole(path: &Path, contents: &[u8]) -> io::Result<()> {
    open_for_writing(path, Write::Replace)?.write_all(contents)
}

/// The temp file [`replace_atomically`] writes first: `<path>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `contents` atomically: written and synced to `<path>.tmp`, then renamed
/// over `path`. A link or a special file at either path is refused, nothing written.
pub fn replace_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    require_absent_or_regular(path)?;
    let tmp = temp_path(path);
    let named = |err: io::Error| io::Error::new(err.kind(), format!("{}: {err}", tmp.display()));
    let mut file = open_for_writing(&tmp, Write::Replace).map_err(named)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(named)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Creates `path` and any missing parents `0700` (the umask can only take bits away). An
/// existing directory is left as it is; a link to a directory is accepted (the profile may be
/// one: it is the operator's choice), a file in its place is an error.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Creates the directory `path` inside the profile `0700` if it is missing, and refuses it when
/// it is a link or not a directory (files written in it would land wherever it points).
pub fn create_private_subdir(path: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => return Err(err),
        _ => {}
    }
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Err(Refused::Symlink.into());
    }
    if !metadata.is_dir() {
        return Err(Refused::WrongKind {
            found: kind_of(&metadata),
            wanted: "directory",
        }
        .into());
    }
    Ok(())
}

/// Whether a read may follow a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A file of the profile: a link in its place is refused, as for writing.
    Refuse,
    /// A path the operator named (`--site FILE`): followed, as any program would.
    Follow,
}

/// Opens the regular file `path` for reading without blocking on a FIFO; a link is refused when
/// `links` says so, and anything but a regular file (a FIFO, a device, a directory) is refused.
pub fn open_for_reading(path: &Path, links: Links) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|err| match links {
            Links::Refuse => explain(path, err),
            Links::Follow => err,
        })?;
    require_regular(&file.metadata()?)?;
    Ok(file)
}

/// The whole of the regular file `path` if it is at most `limit` bytes; a larger one is refused
/// (a setting file or a site definition is never that big: it is a mistake, or `/dev/zero`).
pub fn read_limited(path: &Path, limit: u64, links: Links) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_for_reading(path, links)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(Refused::TooLarge { size, limit }.into());
    }
    // The size can change under us: never read more than the limit, whatever it says now.
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Refused::TooLarge {
            size: bytes.len() as u64,
            limit,
        }
        .into());
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64, links: Links) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit, links)?).map_err(|_| Refused::NotText.into())
}

/// At most the first `limit` bytes of the regular file `path`, and its size: for a file whose
/// useful part is short (the lock, a marker) and whose rest, if any, is not ours to read.
pub fn read_head(path: &Path, limit: u64, links: Links) -> io::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    let file = open_for_reading(path, links)?;
    let size = file.metadata()?.len();
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok((bytes, size))
}

/// The whole lines within the last `limit` bytes of the regular file `path` (a log's latest
/// lines): when the file is longer, the line cut by the limit is left out.
pub fn read_tail(path: &Path, limit: u64, links: Links) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = open_for_reading(path, links)?;
    let size = file.metadata()?.len();
    let start = size.saturating_sub(limit);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    if start > 0 {
        let first_line = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |n| n + 1);
        bytes.drain(..first_line);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Dir(PathBuf);
    impl Dir {
        fn new() -> Dir {
            let dir = std::env::temp_dir().join(format!("executor-files-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Dir(dir)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
        // SAFETY: mkfifo(3) reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    const ALL: [Write; 4] = [
        Write::Append,
        Write::Update,
        Write::Replace,
        Write::CreateNew,
    ];

    #[test]
    fn a_link_is_never_written_through_nor_its_target_created() {
        let dir = Dir::new();
        let target = dir.0.join("target");
        std::fs::write(&target, "precious").expect("target");
        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let dangling = dir.0.join("dangling");
        let missing = dir.0.join("missing");
        std::os::unix::fs::symlink(&missing, &dangling).expect("symlink");
        for how in ALL {
            let err = open_for_writing(&link, how).expect_err("a link");
            if how != Write::CreateNew {
                assert!(err.to_string().contains("symbolic link"), "{how:?}: {err}");
            }
            assert!(open_for_writing(&dangling, how).is_err(), "{how:?}");
        }
        assert!(replace_atomically(&link, b"x").is_err());
        assert!(write_whole(&link, b"x").is_err());
        assert_eq!(
            std::fs::read_to_string(&target).expect("target"),
            "precious"
        );
        assert!(
            !missing.exists(),
            "a dangling link's target is never created"
        );
    }

    #[test]
    fn special_files_are_refused_without_hanging() {
        let dir = Dir::new();
        let fifo = dir.0.join("fifo");
        mkfifo(&fifo);
        let sub = dir.0.join("sub");
        std::fs::create_dir(&sub).expect("dir");
        for how in [Write::Append, Write::Update, Write::Replace] {
            for path in [&fifo, &sub] {
                let err = open_for_writing(path, how).expect_err("special");
                assert!(
                    err.to_string().contains("not a regular file"),
                    "{how:?} {path:?}: {err}"
                );
            }
        }
        let err = replace_atomically(&fifo, b"x").expect_err("fifo");
        assert!(err.to_string().contains("is a FIFO"), "{err}");
        let err = replace_atomically(&dir.0.join("fine"), b"x");
        assert!(err.is_ok(), "{err:?}");
        mkfifo(&dir.0.join("other.tmp"));
        let err = replace_atomically(&dir.0.join("other"), b"x").expect_err("tmp is a FIFO");
        assert!(
            err.to_string().contains("other.tmp") && err.to_string().contains("FIFO"),
            "{err}"
        );
    }

    #[test]
    fn created_files_and_directories_are_owner_only() {
        let dir = Dir::new();
        let file = dir.0.join("new");
        write_whole(&file, b"x").expect("write");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let replaced = dir.0.join("replaced");
        replace_atomically(&replaced, b"x").expect("replace");
        let mode = std::fs::metadata(&replaced)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let nested = dir.0.join("a").join("b");
        create_private_dir(&nested).expect("dirs");
        for path in [dir.0.join("a"), nested] {
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{path:?}");
        }
    }

    #[test]
    fn replace_keeps_nothing_of_the_old_content() {
        let dir = Dir::new();
        let path = dir.0.join("marker");
        std::fs::write(&path, "a much longer old content").expect("old");
        write_whole(&path, b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
    }

    #[test]
    fn reads_take_only_regular_files_and_never_more_than_the_limit() {
        let dir = Dir::new();
        let fifo = dir.0.join("fifo");
        mkfifo(&fifo);
        for links in [Links::Refuse, Links::Follow] {
            let err = read_limited(&fifo, 10, links).expect_err("a FIFO");
            assert!(err.to_string().contains("is a FIFO"), "{err}");
            let err = read_limited(Path::new("/dev/zero"), 10, links).expect_err("a device");
            assert!(err.to_string().contains("character device"), "{err}");
            let err = read_limited(&dir.0, 10, links).expect_err("a directory");
            assert!(err.to_string().contains("a directory"), "{err}");
        }
        let file = dir.0.join("file");
        std::fs::write(&file, "0123456789abc").expect("file");
        let lines = dir.0.join("lines");
        std::fs::write(&lines, "first line\nsecond\nthird\n").expect("lines");
        assert_eq!(
            read_tail(&lines, 12, Links::Refuse).expect("tail"),
            b"third\n",
            "the line the limit cuts is left out"
        );
        let err = read_limited(&file, 10, Links::Refuse).expect_err("too large");
        assert!(
            err.to_string().contains("13 bytes, more than the 10"),
            "{err}"
        );
        assert_eq!(
            read_limited(&file, 13, Links::Refuse).expect("fits"),
            b"0123456789abc"
        );
        assert_eq!(
            read_head(&file, 4, Links::Refuse).expect("head"),
            (b"0123".to_vec(), 13)
        );
        assert_eq!(read_tail(&file, 99, Links::Refuse).expect("tail").len(), 13);
        std::fs::write(&file, [0xff, 0xfe]).expect("file");
        let err = read_text_limited(&file, 10, Links::Refuse).expect_err("not text");
        assert!(err.to_string().contains("not UTF-8"), "{err}");

        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let err = read_limited(&link, 10, Links::Refuse).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(
            read_limited(&link, 10, Links::Follow)
                .expect("followed")
                .len(),
            2
        );
        let missing = read_limited(&dir.0.join("missing"), 10, Links::Refuse).expect_err("none");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_subdirectory_that_is_a_link_or_a_file_is_refused() {
        let dir = Dir::new();
        let elsewhere = dir.0.join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("dir");
        let link = dir.0.join("spool");
        std::os::unix::fs::symlink(&elsewhere, &link).expect("symlink");
        let err = create_private_subdir(&link).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let file = dir.0.join("file");
        std::fs::write(&file, "").expect("file");
        let err = create_private_subdir(&file).expect_err("a file");
        assert!(err.to_string().contains("not a directory"), "{err}");
        let fresh = dir.0.join("fresh");
        create_private_subdir(&fresh).expect("create");
        create_private_subdir(&fresh).expect("again");
    }
}
