//! Domain names reach labels, uids and file names, so only a safe alphabet is accepted.

use crate::error::{Error, Result};

/// The longest accepted name.
pub const MAX_NAME: usize = 64;

/// Accept `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad("it is longer than 64 characters");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_refuses_path_and_label_tricks() {
        for ok in ["vm1", "web-01.prod", "A_b"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            ".hidden",
            "-x",
            "a:b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }
}
