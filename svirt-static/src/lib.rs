//! Static SELinux labels (libvirt's `type='static'`), for MLS guests whose label the administrator
//! fixes. The SELinux driver hands a static seclabel here; this crate checks it and computes the
//! labels, and the driver reserves it in the label store, which libvirt never does, so no
//! dynamic VM can draw a static VM's categories.

use svirt_core::context::{MlsRange, SecurityContext};
use svirt_core::domain::SecLabel;

/// Why a static label is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaticError {
    #[error("static label {label:?} does not parse")]
    Syntax {
        label: String,
        #[source]
        source: svirt_core::Error,
    },
    #[error("static label {label} has no MLS range; svirt needs one to reserve it")]
    NoRange { label: String },
    #[error("static label {label} lies outside the manager's range {manager}")]
    OutsideManagerRange { label: String, manager: String },
    #[error("static label {label} is not valid in the loaded policy")]
    RejectedByPolicy { label: String },
}

impl From<StaticError> for svirt_core::Error {
    fn from(e: StaticError) -> Self {
        // Every cause is in the label the administrator wrote.
        svirt_core::Error::driver_refused("selinux", e)
    }
}

/// A checked static label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticLabel {
    /// The process label, exactly as given.
    pub process: SecurityContext,
    /// The label images get when relabeling is on.
    pub image: SecurityContext,
    /// The range that is reserved.
    pub range: MlsRange,
}

/// Check a static seclabel against the manager's context: the syntax always, the range within
/// the manager's range, and (through `policy_check`, when a policy is available) validity.
pub fn check(
    seclabel: &SecLabel,
    manager: &SecurityContext,
    image_context: &SecurityContext,
    policy_check: &dyn Fn(&str) -> Option<bool>,
) -> Result<StaticLabel, StaticError> {
    let text = seclabel.label.clone().unwrap_or_default();
    let process: SecurityContext = text.parse().map_err(|source| StaticError::Syntax {
        label: text.clone(),
        source,
    })?;
    let range = process.range.clone().ok_or_else(|| StaticError::NoRange {
        label: text.clone(),
    })?;
    if let Some(mr) = &manager.range {
        if !mr.contains(&range) {
            return Err(StaticError::OutsideManagerRange {
                label: text,
                manager: mr.to_string(),
            });
        }
    }
    if policy_check(&text) == Some(false) {
        return Err(StaticError::RejectedByPolicy { label: text });
    }
    let image: SecurityContext = match &seclabel.imagelabel {
        Some(i) => i.parse().map_err(|source| StaticError::Syntax {
            label: i.clone(),
            source,
        })?,
        None => image_context.with_range(range.clone()),
    };
    if let (Some(mr), Some(ir)) = (&manager.range, &image.range) {
        if !mr.contains(ir) {
            return Err(StaticError::OutsideManagerRange {
                label: image.to_string(),
                manager: mr.to_string(),
            });
        }
    }
    if policy_check(&image.to_string()) == Some(false) {
        return Err(StaticError::RejectedByPolicy {
            label: image.to_string(),
        });
    }
    Ok(StaticLabel {
        process,
        image,
        range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mgr() -> SecurityContext {
        "system_u:system_r:virtd_t:s0-s3:c0.c1023".parse().unwrap()
    }
    fn img() -> SecurityContext {
        "system_u:object_r:svirt_image_t:s0".parse().unwrap()
    }
    fn sec(label: &str) -> SecLabel {
        SecLabel {
            model: "selinux".into(),
            label: Some(label.into()),
            ..SecLabel::default()
        }
    }

    #[test]
    fn mls_label_gives_image_label_with_the_same_range() {
        let s = check(
            &sec("system_u:system_r:svirt_t:s2-s3:c0.c1023"),
            &mgr(),
            &img(),
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            s.image.to_string(),
            "system_u:object_r:svirt_image_t:s2-s3:c0.c1023"
        );
        assert_eq!(s.range.to_string(), "s2-s3:c0.c1023");
    }

    #[test]
    fn given_imagelabel_wins() {
        let mut l = sec("system_u:system_r:svirt_t:s0:c1,c2");
        l.imagelabel = Some("system_u:object_r:custom_t:s0:c1,c2".into());
        let s = check(&l, &mgr(), &img(), &|_| None).unwrap();
        assert_eq!(s.image.type_, "custom_t");
    }

    #[test]
    fn outside_manager_range_is_refused() {
        let e = check(
            &sec("system_u:system_r:svirt_t:s5:c1"),
            &mgr(),
            &img(),
            &|_| None,
        )
        .unwrap_err();
        assert!(matches!(e, StaticError::OutsideManagerRange { .. }), "{e}");
    }

    #[test]
    fn an_imagelabel_outside_the_manager_range_is_refused() {
        let mut l = sec("system_u:system_r:svirt_t:s0:c1,c2");
        l.imagelabel = Some("system_u:object_r:svirt_image_t:s9:c1,c2".into());
        let e = check(&l, &mgr(), &img(), &|_| None).unwrap_err();
        assert!(
            matches!(&e, StaticError::OutsideManagerRange { label, .. } if label.contains(":s9:")),
            "{e}"
        );
    }

    #[test]
    fn syntax_and_policy_are_checked() {
        assert!(matches!(
            check(&sec("garbage"), &mgr(), &img(), &|_| None),
            Err(StaticError::Syntax { .. })
        ));
        assert!(matches!(
            check(&sec("u:r:t"), &mgr(), &img(), &|_| None),
            Err(StaticError::NoRange { .. })
        ));
        let e = check(
            &sec("system_u:system_r:nope_t:s0:c1,c2"),
            &mgr(),
            &img(),
            &|l| Some(!l.contains("nope_t")),
        );
        assert!(matches!(e, Err(StaticError::RejectedByPolicy { .. })));
    }
}
