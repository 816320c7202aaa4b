//! libvirt's seclabel rules (domain_conf.c / domain_validate.c), each with its own message.

use std::collections::HashSet;
use std::path::Path;

use super::{DeviceLabel, Domain, LabelType};
use crate::context::SecurityContext;
use crate::error::{Error, Result};

pub(super) fn validate(d: &Domain) -> Result<()> {
    super::validate_name(&d.name)?;
    let invalid = |reason: String| Error::DomainInvalid {
        domain: d.name.clone(),
        reason,
    };

    let mut models = HashSet::new();
    for s in &d.seclabels {
        let m = if s.model.is_empty() {
            "(default)"
        } else {
            &s.model
        };
        if !models.insert(s.model.clone()) {
            return Err(invalid(format!("more than one seclabel for model {m}")));
        }
        let kind = s.kind();
        if kind == LabelType::Dynamic && s.relabel == Some(false) {
            return Err(invalid(format!(
                "model {m}: dynamic label type must use resource relabeling"
            )));
        }
        if kind == LabelType::None && s.relabel == Some(true) {
            return Err(invalid(format!(
                "model {m}: resource relabeling is not compatible with 'none' label type"
            )));
        }
        if kind == LabelType::Static && s.label.is_none() {
            return Err(invalid(format!(
                "model {m}: a static label type needs a label"
            )));
        }
        if kind == LabelType::Dynamic && s.label.is_some() {
            return Err(invalid(format!(
                "model {m}: a dynamic label is generated; remove label or use type = \"static\""
            )));
        }
        if kind != LabelType::Dynamic && s.baselabel.is_some() {
            return Err(invalid(format!(
                "model {m}: baselabel is only used with dynamic labels"
            )));
        }
        if s.imagelabel.is_some() && !(kind == LabelType::Static && s.relabel()) {
            return Err(invalid(format!(
                "model {m}: imagelabel is only accepted for a static label with relabel = true"
            )));
        }
        if kind == LabelType::None && (s.label.is_some() || s.imagelabel.is_some()) {
            return Err(invalid(format!(
                "model {m}: a 'none' label cannot carry a label"
            )));
        }
        if s.model == "selinux" || s.model.is_empty() {
            for text in [&s.label, &s.baselabel, &s.imagelabel]
                .into_iter()
                .flatten()
            {
                check_context(d, text)?;
            }
        }
    }

    // The same path may appear more than once (a disk that is also another disk's backing
    // layer, two slices of one file): libvirt labels it each time and the last label stays;
    // `Domain::resources` keeps one entry per path likewise.
    for r in d.resources() {
        if r.derive.is_none() && r.skip.is_none() {
            check_path(d, &r.path)?;
        }
        check_device_labels(d, &r.path, &r.overrides)?;
    }
    Ok(())
}

fn check_device_labels(d: &Domain, path: &Path, labels: &[DeviceLabel]) -> Result<()> {
    let invalid = |reason: String| Error::DomainInvalid {
        domain: d.name.clone(),
        reason: format!("{}: {reason}", path.display()),
    };
    let mut models = HashSet::new();
    for o in labels {
        if !models.insert(o.model.clone()) {
            return Err(invalid(format!(
                "more than one seclabel for model {}",
                o.model
            )));
        }
        if let Some(dom) = d.seclabels.iter().find(|s| s.model == o.model) {
            if !dom.relabel() {
                return Err(invalid(
                    "label overrides require relabeling to be enabled at the domain level".into(),
                ));
            }
        }
        if o.relabel == Some(false) && o.label.is_some() {
            return Err(invalid(
                "cannot specify a label if relabelling is turned off".into(),
            ));
        }
        // virSecurityDeviceLabelDefParseXML: an explicit relabel='yes' needs a label; a
        // seclabel with neither is valid and changes nothing.
        if o.relabel == Some(true) && o.label.is_none() {
            return Err(invalid("cannot specify relabel if label is missing".into()));
        }
        if let (Some(l), "selinux" | "") = (&o.label, o.model.as_str()) {
            check_context(d, l)?;
        }
    }
    Ok(())
}

fn check_context(d: &Domain, text: &str) -> Result<()> {
    text.parse::<SecurityContext>()
        .map(|_| ())
        .map_err(|e| Error::DomainInvalid {
            domain: d.name.clone(),
            reason: e.to_string(),
        })
}

fn check_path(d: &Domain, p: &Path) -> Result<()> {
    let s = p.as_os_str().as_encoded_bytes();
    let reason = if !p.is_absolute() {
        "is not an absolute path"
    } else if s.contains(&b'\n') || s.contains(&0) {
        "contains a newline or NUL"
    } else if p
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        "contains '..'"
    } else {
        return Ok(());
    };
    Err(Error::DomainInvalid {
        domain: d.name.clone(),
        reason: format!("{} {reason}", p.display()),
    })
}

#[cfg(test)]
mod tests {
    use crate::domain::Domain;
    use crate::error::Error;

    fn invalid(toml: &str) -> String {
        match Domain::from_toml(toml, "test") {
            Err(Error::DomainInvalid { reason, .. }) => reason,
            other => panic!("expected DomainInvalid, got {other:?}"),
        }
    }

    #[test]
    fn dynamic_needs_relabel() {
        let r = invalid("name='a'\n[[seclabel]]\nmodel='selinux'\ntype='dynamic'\nrelabel=false\n");
        assert!(
            r.contains("dynamic label type must use resource relabeling"),
            "{r}"
        );
    }

    #[test]
    fn none_forbids_relabel() {
        let r = invalid("name='a'\n[[seclabel]]\nmodel='selinux'\ntype='none'\nrelabel=true\n");
        assert!(r.contains("not compatible with 'none'"), "{r}");
    }

    #[test]
    fn static_needs_a_label() {
        let r = invalid("name='a'\n[[seclabel]]\nmodel='selinux'\ntype='static'\n");
        assert!(r.contains("static label type needs a label"), "{r}");
    }

    #[test]
    fn dynamic_cannot_carry_a_label() {
        let r = invalid(
            "name='a'\n[[seclabel]]\nmodel='selinux'\ntype='dynamic'\nlabel='u:r:t:s0:c1,c2'\n",
        );
        assert!(r.contains("dynamic label is generated"), "{r}");
    }

    #[test]
    fn baselabel_only_for_dynamic() {
        let r = invalid("name='a'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='u:r:t:s0'\nbaselabel='u:r:t:s0'\n");
        assert!(r.contains("baselabel is only used with dynamic"), "{r}");
    }

    #[test]
    fn imagelabel_only_for_static_with_relabel() {
        let r = invalid("name='a'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='u:r:t:s0'\nimagelabel='u:object_r:t:s0'\n");
        assert!(r.contains("imagelabel is only accepted"), "{r}");
    }

    #[test]
    fn one_seclabel_per_model() {
        let r = invalid("name='a'\n[[seclabel]]\nmodel='dac'\n[[seclabel]]\nmodel='dac'\n");
        assert!(r.contains("more than one seclabel for model dac"), "{r}");
    }

    #[test]
    fn device_override_needs_domain_relabel() {
        let r = invalid(
            "name='a'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='u:r:t:s0:c1,c2'\nrelabel=false\n\
             [[disk]]\npath='/i/a.img'\n[[disk.seclabel]]\nmodel='selinux'\nrelabel=false\n",
        );
        assert!(r.contains("label overrides require relabeling"), "{r}");
    }

    #[test]
    fn device_label_needs_relabel() {
        let r = invalid(
            "name='a'\n[[disk]]\npath='/i/a.img'\n[[disk.seclabel]]\nmodel='selinux'\nrelabel=false\nlabel='u:object_r:t:s0'\n",
        );
        assert!(
            r.contains("cannot specify a label if relabelling is turned off"),
            "{r}"
        );
    }

    #[test]
    fn bad_context_syntax_is_named() {
        let r = invalid(
            "name='a'\n[[seclabel]]\nmodel='selinux'\ntype='static'\nlabel='not a context'\n",
        );
        assert!(r.contains("not a context"), "{r}");
    }

    #[test]
    fn paths_must_be_absolute_and_plain() {
        let r = invalid("name='a'\n[[disk]]\npath='rel.img'\n");
        assert!(r.contains("not an absolute path"), "{r}");
        let r = invalid("name='a'\n[[disk]]\npath='/x/../etc/shadow'\n");
        assert!(r.contains("'..'"), "{r}");
    }

    #[test]
    fn bad_names_are_refused_before_use() {
        assert!(matches!(
            Domain::from_toml("name='../../etc'\n", "t"),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn unknown_toml_keys_are_refused() {
        assert!(matches!(
            Domain::from_toml("name='a'\n[[disk]]\npath='/a'\nreadonyl=true\n", "t"),
            Err(Error::DomainParse { .. })
        ));
    }

    #[test]
    fn full_toml_example_parses() {
        let d = Domain::from_toml(
            r#"
name = "vm1"
uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809"
kernel = "/boot/vmlinuz"
initrd = "/boot/initrd"
[[seclabel]]
model = "selinux"
type = "dynamic"
relabel = true
baselabel = "system_u:system_r:svirt_tcg_t:s0"
[[disk]]
path = "/var/lib/svirt/images/vm1.img"
readonly = false
shareable = false
backing = ["/var/lib/svirt/images/base.img"]
[[disk.seclabel]]
model = "selinux"
relabel = false
[[filesystem]]
path = "/srv/vm1-share"
readonly = false
[[chardev]]
path = "/run/vm1.sock"
[[hostdev]]
path = "/dev/vfio/12"
"#,
            "t",
        )
        .unwrap();
        let kinds: Vec<_> = d.resources().iter().map(|r| (r.kind, r.access)).collect();
        use crate::domain::{Access::*, ResourceKind::*};
        assert_eq!(
            kinds,
            vec![
                (Disk, Private),
                (Backing, ReadOnly),
                (Chardev, Private),
                (Kernel, ReadOnly),
                (Initrd, ReadOnly),
                (Filesystem, Private),
                (Hostdev, Private)
            ]
        );
        assert_eq!(d.disks[0].seclabels[0].relabel, Some(false));
    }
}
