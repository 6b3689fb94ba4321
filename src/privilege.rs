//! Dropping root: the sensor opens what needs privilege (the capture handle, the metrics listener,
//! output files and spool directories) as root, then becomes an ordinary user before it reads a
//! single packet, so a bug in a decoder never runs with root's powers.
//!
//! The drop is all or nothing: supplementary groups are replaced by the user's primary group, then
//! the group, then the user ids (real, effective and saved, so root cannot be regained). It is
//! then verified: every id must be the target's, and `setuid(0)` must fail. Any failure is an
//! error, and the caller exits rather than run on as root.

use std::ffi::{CStr, CString};
use std::path::Path;

/// Why switching to the `--user` failed; the sensor must not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// The name is not in the user database (the operator's typo or a missing `useradd`).
    #[error("--user {0}: no such user; create it (useradd --system --no-create-home {0}) or fix the name")]
    NoSuchUser(String),
    /// The name cannot be a user name.
    #[error("--user {0:?}: not a valid user name")]
    BadName(String),
    /// The target is root itself: nothing would be dropped.
    #[error("--user {0}: has uid 0, so nothing would be dropped; name an unprivileged user")]
    TargetIsRoot(String),
    /// Not root and not already the user: only root can switch users.
    #[error("--user {user}: running as uid {uid}, which cannot switch users; start as root or drop --user")]
    NotRoot {
        /// The requested user.
        user: String,
        /// Our uid.
        uid: u32,
    },
    /// A system call in the drop failed.
    #[error("cannot drop privileges to {user}: {call} failed: {source}; refusing to run as root")]
    Call {
        /// The requested user.
        user: String,
        /// Which call.
        call: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The calls returned success but the ids say otherwise (a kernel or seccomp surprise).
    #[error("privilege drop to {user} did not take effect ({what}); refusing to run as root")]
    NotDropped {
        /// The requested user.
        user: String,
        /// What the check found.
        what: String,
    },
    /// Handing a path the sensor writes to the user failed.
    #[error("cannot hand {} to user {user}: {source}; chown it yourself or run without --user", path.display())]
    Chown {
        /// The user.
        user: String,
        /// The path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// An unprivileged account looked up in the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id (never 0).
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

impl User {
    /// Looks `name` up (getpwnam_r); a numeric name is not treated as a uid.
    pub fn lookup(name: &str) -> Result<User, PrivilegeError> {
        let c = CString::new(name).map_err(|_| PrivilegeError::BadName(name.to_string()))?;
        if name.is_empty() {
            return Err(PrivilegeError::BadName(name.to_string()));
        }
        // SAFETY: passwd is plain old data; zeroed is a valid value that getpwnam_r overwrites.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0u8; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives the use of pw's strings, which
        // are not read beyond this function.
        let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if rc != 0 {
            return Err(PrivilegeError::Call {
                user: name.to_string(),
                call: "getpwnam_r",
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(PrivilegeError::NoSuchUser(name.to_string()));
        }
        if pw.pw_uid == 0 {
            return Err(PrivilegeError::TargetIsRoot(name.to_string()));
        }
        Ok(User {
            name: name.to_string(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
        })
    }

    /// Gives `path` (a file, or a directory and everything in it) to this user, so alert-file
    /// reopening on SIGHUP, rotation and spool writes keep working after the drop. Missing paths
    /// are skipped. Root only; call before [`User::become_user`].
    pub fn hand_over(&self, path: &Path) -> Result<(), PrivilegeError> {
        let err = |source| PrivilegeError::Chown {
            user: self.name.clone(),
            path: path.to_path_buf(),
            source,
        };
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        // Symlinks are not followed: a link planted in a spool directory must not hand over its target.
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).map_err(err)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).map_err(err)? {
                self.hand_over(&entry.map_err(err)?.path())?;
            }
        }
        Ok(())
    }

    /// Switches this process (every thread: glibc broadcasts set*id) to the user, then verifies.
    /// A no-op when already running as exactly this user; an error if not root otherwise.
    pub fn become_user(&self) -> Result<(), PrivilegeError> {
        let (uid, euid) = ids();
        if uid == self.uid && euid == self.uid {
            return self.verify();
        }
        if euid != 0 {
            return Err(PrivilegeError::NotRoot {
                user: self.name.clone(),
                uid: euid,
            });
        }
        let call = |call: &'static str, rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(PrivilegeError::Call {
                    user: self.name.clone(),
                    call,
                    source: std::io::Error::last_os_error(),
                })
            }
        };
        let groups = [self.gid as libc::gid_t];
        // Order matters: groups and gid need root, so they go before the uid.
        // SAFETY: plain system calls with valid arguments.
        unsafe {
            call("setgroups", libc::setgroups(1, groups.as_ptr()))?;
            call("setresgid", libc::setresgid(self.gid, self.gid, self.gid))?;
            call("setresuid", libc::setresuid(self.uid, self.uid, self.uid))?;
        }
        self.verify()
    }

    fn verify(&self) -> Result<(), PrivilegeError> {
        let bad = |what: String| PrivilegeError::NotDropped {
            user: self.name.clone(),
            what,
        };
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: valid out-pointers.
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
        if (r, e, s) != (self.uid, self.uid, self.uid) {
            return Err(bad(format!("uids are {r}/{e}/{s}, want {}", self.uid)));
        }
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: valid out-pointers.
        unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
        if (r, e, s) != (self.gid, self.gid, self.gid) {
            return Err(bad(format!("gids are {r}/{e}/{s}, want {}", self.gid)));
        }
        // SAFETY: a failed setuid changes nothing; a successful one means the drop is reversible.
        if unsafe { libc::setuid(0) } == 0 {
            return Err(bad("setuid(0) succeeded afterwards".into()));
        }
        Ok(())
    }
}

/// (real, effective) uid of this process.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid and geteuid have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::geteuid()) }
}

/// The login name for `uid`, for log lines; `None` if it has none.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: see User::lookup.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid pointers; strings are copied out before buf is freed.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf and is NUL-terminated.
    Some(unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned())
}

/// The name of group `gid`, for log lines and tests; `None` if it has none.
pub fn group_name(gid: u32) -> Option<String> {
    // SAFETY: group is plain old data; zeroed is valid and getgrgid_r overwrites it.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid pointers; the name is copied out before buf is freed.
    let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: gr_name points into buf and is NUL-terminated.
    Some(unsafe { CStr::from_ptr(gr.gr_name) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_real_users_and_names_the_fault() {
        // `nobody` exists on every Debian system.
        let u = User::lookup("nobody").unwrap();
        assert_ne!(u.uid, 0);
        assert_eq!(user_name(u.uid).as_deref(), Some("nobody"));
        assert!(matches!(User::lookup("root"), Err(PrivilegeError::TargetIsRoot(_))));
        let e = User::lookup("no-such-user-ngb").unwrap_err();
        assert!(matches!(e, PrivilegeError::NoSuchUser(_)));
        assert!(e.to_string().contains("useradd"), "{e}");
        assert!(matches!(User::lookup("a\0b"), Err(PrivilegeError::BadName(_))));
        assert!(matches!(User::lookup(""), Err(PrivilegeError::BadName(_))));
    }

    #[test]
    fn non_root_cannot_switch_to_another_user() {
        if ids().1 == 0 {
            // As root the call would really switch this test process; tests/ops.rs covers it in a child.
            return;
        }
        let e = User::lookup("nobody").unwrap().become_user().unwrap_err();
        assert!(matches!(e, PrivilegeError::NotRoot { .. }), "{e}");
    }
}
