//! The no-op driver (`none`), for hosts that opt out of confinement.

use async_trait::async_trait;

use crate::config::{BuildContext, DriverConfig};
use crate::domain::{Domain, LabelType, SecLabel};
use crate::driver::{LabelRecord, Probe, SecurityDriver};
use crate::error::Result;
use std::sync::Arc;

/// The model name of the no-op driver, which a domain may always name (libvirt's `none`).
pub const MODEL: &str = "none";

/// A driver that confines nothing and changes nothing.
#[derive(Debug, Default)]
pub struct NoopDriver;

#[async_trait]
impl SecurityDriver for NoopDriver {
    fn model(&self) -> &str {
        MODEL
    }

    fn confines(&self) -> bool {
        false
    }

    async fn probe(&self) -> Probe {
        Probe {
            available: true,
            detail: "always available; confines nothing".into(),
        }
    }

    async fn generate_label(&self, _domain: &Domain, _seclabel: &SecLabel) -> Result<LabelRecord> {
        Ok(LabelRecord {
            model: MODEL.into(),
            kind: LabelType::None,
            label: String::new(),
            imagelabel: None,
            relabel: false,
            facts: Default::default(),
        })
    }
}

/// Config for the no-op driver: `[[driver]] driver = "none"`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopConfig {}

#[typetag::serde(name = "none")]
impl DriverConfig for NoopConfig {
    fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn crate::driver::SecurityDriver>> {
        Ok(Arc::new(NoopDriver))
    }
}
