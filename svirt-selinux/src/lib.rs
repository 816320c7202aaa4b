//! svirt-selinux: sVirt's dynamic MCS labels. Each VM gets a unique category pair
//! (`svirt_t:s0:cA,cB`), its private images `svirt_image_t:s0:cA,cB`, shared images
//! `svirt_image_t:s0`, read-only content `virt_content_t:s0`; originals are remembered and put
//! back at stop. Static labels (MLS guests) are checked by svirt-static and reserved here.

mod attr;
mod config;
mod contexts;
mod decide;
mod defaults;
mod driver;
mod error;
mod hook;
mod kernel;
mod policy_file;
mod sys;
mod wall;

pub use attr::SelinuxAttr;
pub use config::SelinuxConfig;
pub use contexts::Contexts;
pub use decide::{default_policy, AccessDecision, DenyReason, PolicyFile};
pub use defaults::policy_default;
pub use driver::SelinuxDriver;
pub use error::SelinuxError;
pub use kernel::{Kernel, LibSelinux};
pub use policy_file::{check as check_against_policy_file, installed as installed_policy};
pub use wall::{SelinuxMarker, SelinuxWall, UNLABELED};
