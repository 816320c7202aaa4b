//! `[[driver]] driver = "selinux"`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::context::SecurityContext;
use svirt_core::driver::SecurityDriver;

use crate::contexts::{self, read_line, Contexts};
use crate::driver::SelinuxDriver;
use crate::error::SelinuxError;
use crate::kernel::{Kernel, LibSelinux};

/// SELinux driver settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelinuxConfig {
    /// Label files as on a real host, set no process labels, check nothing against a kernel.
    #[serde(default)]
    pub offline: bool,
    /// The manager's own context (default: the kernel's view of this process).
    #[serde(default)]
    pub manager_context: Option<String>,
    /// The VM process context (default: line 1 of contexts/virtual_domain_context).
    #[serde(default)]
    pub domain_context: Option<String>,
    /// The TCG variant (default: line 2 of contexts/virtual_domain_context).
    #[serde(default)]
    pub tcg_context: Option<String>,
    /// The image context (default: line 1 of contexts/virtual_image_context).
    #[serde(default)]
    pub image_context: Option<String>,
    /// The read-only content context (default: line 2 of contexts/virtual_image_context).
    #[serde(default)]
    pub content_context: Option<String>,
    /// The policy directory holding contexts/ (default /etc/selinux/default).
    #[serde(default)]
    pub policy_root: Option<PathBuf>,
    /// The file_contexts used for default labels (default: policy_root/contexts/files/file_contexts).
    #[serde(default)]
    pub file_contexts: Option<PathBuf>,
    /// In offline mode, the binary policy static labels are checked against (default: the newest
    /// policy_root/policy/policy.NN, when one is installed).
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
}

fn parse(key: &'static str, text: &str) -> svirt_core::Result<SecurityContext> {
    text.parse().map_err(|e| svirt_core::Error::Config {
        reason: format!("selinux driver: {key}: {}", svirt_core::display_chain(&e)),
    })
}

impl SelinuxConfig {
    /// Resolve every context from the configuration, the policy files and the kernel.
    pub fn contexts(&self, kernel: &dyn Kernel) -> svirt_core::Result<Contexts> {
        let root = self
            .policy_root
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/selinux/default"));
        let dom_file = root.join("contexts/virtual_domain_context");
        let img_file = root.join("contexts/virtual_image_context");
        let pick = |key: &'static str,
                    given: &Option<String>,
                    file: &std::path::Path,
                    line: usize,
                    fallback: &str|
         -> svirt_core::Result<SecurityContext> {
            if let Some(g) = given {
                return parse(key, g);
            }
            if let Some(c) = read_line(file, line) {
                return Ok(c);
            }
            if self.offline {
                return parse(key, fallback);
            }
            Err(Contexts::missing(key, file, key).into())
        };
        let manager = match &self.manager_context {
            Some(m) => parse("manager_context", m)?,
            None if self.offline => parse("manager_context", contexts::DEFAULT_MANAGER)?,
            None => parse(
                "manager_context",
                &kernel
                    .current_context()
                    .map_err(SelinuxError::NoManagerContext)?,
            )?,
        };
        Ok(Contexts {
            manager,
            domain: pick(
                "domain_context",
                &self.domain_context,
                &dom_file,
                0,
                contexts::DEFAULT_DOMAIN,
            )?,
            tcg: match &self.tcg_context {
                Some(t) => Some(parse("tcg_context", t)?),
                None => read_line(&dom_file, 1).or_else(|| {
                    self.offline
                        .then(|| contexts::DEFAULT_TCG.parse().ok())
                        .flatten()
                }),
            },
            image: pick(
                "image_context",
                &self.image_context,
                &img_file,
                0,
                contexts::DEFAULT_IMAGE,
            )?,
            content: pick(
                "content_context",
                &self.content_context,
                &img_file,
                1,
                contexts::DEFAULT_CONTENT,
            )?,
        })
    }
}

#[typetag::serde(name = "selinux")]
impl DriverConfig for SelinuxConfig {
    fn build(&self, ctx: &BuildContext) -> svirt_core::Result<Arc<dyn SecurityDriver>> {
        let kernel: Arc<dyn Kernel> = Arc::new(LibSelinux);
        if !self.offline && kernel.mode().is_none() {
            return Err(SelinuxError::NotEnabled.into());
        }
        let contexts = self.contexts(kernel.as_ref())?;
        let root = self
            .policy_root
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/selinux/default"));
        let fc = self
            .file_contexts
            .clone()
            .unwrap_or_else(|| root.join("contexts/files/file_contexts"));
        let policy = self
            .policy_file
            .clone()
            .or_else(|| crate::policy_file::installed(&root));
        let driver =
            SelinuxDriver::with_file_contexts(self.offline, contexts, kernel, ctx, Some(fc))?;
        Ok(Arc::new(driver.with_policy_file(policy)))
    }
}
