//! Pushing a branch. May run: ssh (or your own `core.sshCommand`) and your
//! own credential helper; never the repo's receive-pack, proxy or
//! transport helper (see `harden`).

use super::{GitError, run};
use std::path::Path;

/// Does the repo have this remote?
pub fn has_remote(root: &Path, remote: &str) -> bool {
    run(root, &["remote", "get-url", "--", remote]).is_ok()
}

/// Push `refspec` to `remote`, with `--force-with-lease` when `lease`.
pub fn push(root: &Path, remote: &str, refspec: &str, lease: bool) -> Result<(), GitError> {
    let mut args = vec!["push", "--quiet"];
    if lease {
        args.push("--force-with-lease");
    }
    args.extend(["--", remote, refspec]);
    run(root, &args).map(|_| ())
}
