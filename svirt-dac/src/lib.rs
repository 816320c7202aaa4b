//! svirt-dac: every VM runs under its own uid and gid, owns its private images (mode 0600), shares
//! a group for shareable images (0660), and can only read read-only content (root:shared 0440).
//! It needs no SELinux, and stacks under it as a second wall.

mod attr;
mod config;
mod driver;
mod error;
mod hook;
mod ids;
mod sys;
mod wall;

pub use attr::DacAttr;
pub use config::DacConfig;
pub use driver::{DacDriver, DacFacts};
pub use error::DacError;
pub use hook::DacHook;
pub use ids::{parse_owner, IdRange};
pub use wall::{DacMarker, DacWall};
