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
