//! `<seclabel>` in configuration XML, by libvirt's rules (`src/conf/domain_conf.c`):
//! `virSecurityLabelDefParseXML`, `virSecurityLabelDefsParseXML` and
//! `virSecurityDeviceLabelDefParseXML`, parsing as for a defined (inactive) domain.

use roxmltree::Node;

use super::xml::{child_text, children};
use super::{DeviceLabel, LabelType, SecLabel};

type Res<T> = std::result::Result<T, String>;

fn yes_no(v: Option<&str>, what: &str) -> Res<Option<bool>> {
    match v {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(other) => Err(format!("invalid security {what} value '{other}'")),
    }
}

/// One domain `<seclabel>` (`virSecurityLabelDefParseXML`).
fn domain_seclabel(s: Node<'_, '_>) -> Res<SecLabel> {
    let model = s.attribute("model").unwrap_or("").to_owned();
    // The type defaults to dynamic; a <label> without a type does not make it static.
    let mut kind = match s.attribute("type") {
        None | Some("dynamic") => LabelType::Dynamic,
        Some("static") => LabelType::Static,
        Some("none") => LabelType::None,
        Some(other) => return Err(format!("invalid security type '{other}'")),
    };
    let mut relabel = yes_no(s.attribute("relabel"), "relabel")?;
    if model == "none" {
        // A model='none' label is unconfined whatever its type says.
        kind = LabelType::None;
        relabel = Some(false);
    }
    Ok(SecLabel {
        model,
        kind: Some(kind),
        relabel,
        // <label> is read only for static labels in configuration XML (a dynamic one is the
        // output of a running domain), <imagelabel> never, <baselabel> only for dynamic ones.
        label: (kind == LabelType::Static)
            .then(|| child_text(s, "label"))
            .flatten(),
        baselabel: (kind == LabelType::Dynamic)
            .then(|| child_text(s, "baselabel"))
            .flatten(),
        imagelabel: None,
        shared: false,
    })
}

/// Every domain `<seclabel>` (`virSecurityLabelDefsParseXML`): a single model-less label is
/// the primary driver's only when it is `none` or a plain dynamic one; with several labels,
/// each needs a model.
pub(super) fn domain_seclabels(root: Node<'_, '_>) -> Res<Vec<SecLabel>> {
    let labels = children(root, "seclabel")
        .map(domain_seclabel)
        .collect::<Res<Vec<_>>>()?;
    match labels.as_slice() {
        [one] if one.model.is_empty() => {
            let plain_dynamic = one.kind() == LabelType::Dynamic && one.baselabel.is_none();
            if !(one.kind() == LabelType::None || plain_dynamic) {
                return Err("missing security model in domain seclabel".into());
            }
        }
        many if many.len() > 1 && many.iter().any(|l| l.model.is_empty()) => {
            return Err("missing security model when using multiple labels".into());
        }
        _ => {}
    }
    Ok(labels)
}

/// The `<seclabel>` children of a device's `<source>` (`virSecurityDeviceLabelDefParseXML`):
/// relabel defaults to yes, `labelskip` is output-only and ignored here.
pub(super) fn device_seclabels(n: Node<'_, '_>) -> Res<Vec<DeviceLabel>> {
    children(n, "seclabel")
        .map(|s| {
            Ok(DeviceLabel {
                model: s.attribute("model").unwrap_or("").to_owned(),
                relabel: yes_no(s.attribute("relabel"), "relabel")?,
                label: child_text(s, "label"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::domain::{Domain, LabelType};
    use crate::error::Error;

    fn parse(body: &str) -> crate::error::Result<Domain> {
        Domain::from_xml(
            &format!("<domain type='kvm'><name>a</name>{body}</domain>"),
            "a.xml",
        )
    }

    fn err(body: &str) -> String {
        match parse(body) {
            Err(Error::DomainParse { reason, .. }) | Err(Error::DomainInvalid { reason, .. }) => {
                reason
            }
            other => panic!("expected an error for {body}, got {other:?}"),
        }
    }

    fn disk(seclabel: &str) -> String {
        format!("<devices><disk type='file'><source file='/i/a.img'>{seclabel}</source></disk></devices>")
    }

    #[test]
    fn a_device_seclabel_with_neither_relabel_nor_label_is_valid_and_changes_nothing() {
        let d = parse(&disk("<seclabel model='selinux'/>")).unwrap();
        assert_eq!(d.disks[0].seclabels[0].relabel, None);
        let r = &d.resources()[0];
        assert_eq!(r.choice("selinux"), crate::domain::DeviceChoice::Default);
    }

    #[test]
    fn labelskip_is_accepted_and_ignored_in_configuration_xml() {
        let d = parse(&disk("<seclabel model='selinux' labelskip='yes'/>")).unwrap();
        assert_eq!(
            d.resources()[0].choice("selinux"),
            crate::domain::DeviceChoice::Default
        );
        parse(&disk("<seclabel model='selinux' labelskip='bogus'/>")).unwrap();
    }

    #[test]
    fn relabel_yes_on_a_device_without_a_label_is_an_error() {
        let e = err(&disk("<seclabel model='selinux' relabel='yes'/>"));
        assert!(
            e.contains("cannot specify relabel if label is missing"),
            "{e}"
        );
    }

    #[test]
    fn a_device_label_with_relabel_no_is_an_error() {
        let e = err(&disk(
            "<seclabel model='selinux' relabel='no'><label>u:object_r:t:s0</label></seclabel>",
        ));
        assert!(
            e.contains("cannot specify a label if relabelling is turned off"),
            "{e}"
        );
    }

    #[test]
    fn model_less_domain_seclabels_follow_libvirts_rules() {
        // One plain dynamic or none label without a model is the primary driver's.
        parse("<seclabel type='dynamic'/>").unwrap();
        parse("<seclabel type='none'/>").unwrap();
        for bad in [
            "<seclabel type='static' relabel='no'><label>u:r:t:s0</label></seclabel>",
            "<seclabel type='dynamic'><baselabel>u:r:t:s0</baselabel></seclabel>",
        ] {
            let e = err(bad);
            assert!(
                e.contains("missing security model in domain seclabel"),
                "{e}"
            );
        }
        let e = err("<seclabel type='dynamic' model='selinux'/><seclabel type='dynamic'/>");
        assert!(
            e.contains("missing security model when using multiple labels"),
            "{e}"
        );
    }

    #[test]
    fn imagelabel_and_a_static_baselabel_are_ignored_not_errors() {
        let d = parse(
            "<seclabel type='static' model='selinux' relabel='yes'><label>u:r:t:s0:c1,c2</label>\
             <imagelabel>u:object_r:x_t:s0</imagelabel><baselabel>u:r:b_t:s0</baselabel></seclabel>",
        )
        .unwrap();
        let s = d.seclabel("selinux").unwrap();
        assert_eq!(s.imagelabel, None);
        assert_eq!(s.baselabel, None);
        assert_eq!(s.label.as_deref(), Some("u:r:t:s0:c1,c2"));
    }

    #[test]
    fn a_label_without_a_type_is_dynamic_and_dropped() {
        let d =
            parse("<seclabel model='selinux'><label>u:r:t:s0:c1,c2</label></seclabel>").unwrap();
        let s = d.seclabel("selinux").unwrap();
        assert_eq!(s.kind(), LabelType::Dynamic);
        assert_eq!(s.label, None);
    }

    #[test]
    fn a_static_label_without_a_label_is_an_error_and_model_none_is_unconfined() {
        let e = err("<seclabel type='static' model='selinux'/>");
        assert!(e.contains("needs a label"), "{e}");
        let d = parse("<seclabel type='dynamic' model='none'/>").unwrap();
        assert_eq!(d.seclabel("none").unwrap().kind(), LabelType::None);
    }

    #[test]
    fn a_seclabel_directly_under_disk_is_not_parsed() {
        let d = parse(
            "<devices><disk type='file'><source file='/i/a.img'/>\
             <seclabel model='selinux' relabel='no'/></disk></devices>",
        )
        .unwrap();
        assert!(d.disks[0].seclabels.is_empty());
    }

    #[test]
    fn readonly_and_shareable_make_a_shared_disk() {
        let d = parse(
            "<devices><disk type='file'><source file='/i/a.img'/><readonly/><shareable/></disk></devices>",
        )
        .unwrap();
        assert_eq!(d.disks[0].access(), crate::domain::Access::Shared);
    }

    #[test]
    fn the_type_attribute_gives_tcg() {
        assert_eq!(
            Domain::from_xml("<domain type='qemu'><name>a</name></domain>", "a")
                .unwrap()
                .virt_type,
            crate::domain::VirtType::Qemu
        );
    }
}
