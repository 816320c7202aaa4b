//! The manager's stack semantics, with drivers that record every call and fail on demand.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use svirt_core::domain::{Domain, LabelType, SecLabel};
use svirt_core::driver::{
    DomainCtx, ExecHook, ExecOptions, ExecPhase, LabelRecord, Probe, SecurityDriver,
};
use svirt_core::manager::SecurityManager;
use svirt_core::{Error, Result};

type Log = Arc<Mutex<Vec<String>>>;

#[derive(Debug)]
struct Recording {
    model: &'static str,
    log: Log,
    fail: &'static [&'static str],
    phase: ExecPhase,
}

impl Recording {
    fn driver(
        model: &'static str,
        log: &Log,
        fail: &'static [&'static str],
    ) -> Arc<dyn SecurityDriver> {
        Arc::new(Recording {
            model,
            log: log.clone(),
            fail,
            phase: ExecPhase::Identity,
        })
    }
    fn call(&self, op: &str) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}.{op}", self.model));
        if self.fail.contains(&op) {
            return Err(Error::Unsupported {
                model: self.model.into(),
                operation: "injected failure",
            });
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Hook(ExecPhase);
impl ExecHook for Hook {
    fn phase(&self) -> ExecPhase {
        self.0
    }
    fn apply(&self) -> std::result::Result<(), i32> {
        Ok(())
    }
}

#[async_trait]
impl SecurityDriver for Recording {
    fn model(&self) -> &str {
        self.model
    }
    async fn probe(&self) -> Probe {
        Probe {
            available: true,
            detail: String::new(),
        }
    }
    async fn generate_label(&self, _d: &Domain, s: &SecLabel) -> Result<LabelRecord> {
        self.call("generate")?;
        Ok(LabelRecord {
            model: self.model.into(),
            kind: s.kind(),
            label: format!("{}-label", self.model),
            imagelabel: None,
            relabel: s.relabel(),
            facts: Default::default(),
        })
    }
    async fn release_label(&self, _ctx: DomainCtx<'_>) -> Result<()> {
        self.call("release")
    }
    fn prepare_exec(
        &self,
        _ctx: DomainCtx<'_>,
        _o: &ExecOptions,
    ) -> Result<Option<Box<dyn ExecHook>>> {
        Ok(Some(Box::new(Hook(self.phase))))
    }
}

fn domain(extra: &str) -> Domain {
    Domain::from_toml(&format!("name = \"vm\"\n{extra}"), "t").unwrap()
}

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

#[tokio::test]
async fn a_failing_generate_releases_the_labels_already_made() {
    let l = log();
    let m = SecurityManager::new(
        vec![
            Recording::driver("a", &l, &[]),
            Recording::driver("b", &l, &[]),
            Recording::driver("c", &l, &["generate"]),
        ],
        false,
    )
    .unwrap();
    assert!(m.generate(&domain("")).await.is_err());
    assert_eq!(
        *l.lock().unwrap(),
        [
            "a.generate",
            "b.generate",
            "c.generate",
            "b.release",
            "a.release"
        ]
    );
}

#[tokio::test]
async fn labels_default_to_dynamic_and_a_modelless_seclabel_goes_to_the_primary() {
    let l = log();
    let m = SecurityManager::new(
        vec![
            Recording::driver("a", &l, &[]),
            Recording::driver("b", &l, &[]),
        ],
        false,
    )
    .unwrap();
    let d = domain("[[seclabel]]\ntype = \"none\"\n");
    let labels = m.generate(&d).await.unwrap();
    assert_eq!(
        labels[0].kind,
        LabelType::None,
        "model-less seclabel applies to the primary"
    );
    assert_eq!(
        labels[1].kind,
        LabelType::Dynamic,
        "no seclabel means default confined"
    );
}

#[tokio::test]
async fn unknown_models_and_unconfined_domains_are_refused() {
    let l = log();
    let m = SecurityManager::new(vec![Recording::driver("a", &l, &[])], true).unwrap();
    let e = m
        .generate(&domain("[[seclabel]]\nmodel = \"apparmor\"\n"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ModelUnavailable { ref model, .. } if model == "apparmor"),
        "{e}"
    );
    let e = m
        .generate(&domain("[[seclabel]]\nmodel = \"a\"\ntype = \"none\"\n"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unconfined { .. }), "{e}");
    assert!(
        l.lock().unwrap().is_empty(),
        "nothing generated for refused domains"
    );
    let lax = SecurityManager::new(vec![Recording::driver("a", &l, &[])], false).unwrap();
    lax.generate(&domain("[[seclabel]]\nmodel = \"a\"\ntype = \"none\"\n"))
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_hooks_run_label_then_identity_then_confine() {
    let l = log();
    let mk = |model, phase| -> Arc<dyn SecurityDriver> {
        Arc::new(Recording {
            model,
            log: l.clone(),
            fail: &[],
            phase,
        })
    };
    let m = SecurityManager::new(
        vec![
            mk("confine", ExecPhase::Confine),
            mk("ident", ExecPhase::Identity),
            mk("label", ExecPhase::Label),
        ],
        false,
    )
    .unwrap();
    let d = domain("");
    let labels = m.generate(&d).await.unwrap();
    let hooks = m
        .prepare_exec(&d, &labels, &ExecOptions::default())
        .unwrap();
    let phases: Vec<ExecPhase> = hooks.iter().map(|h| h.phase()).collect();
    assert_eq!(
        phases,
        [ExecPhase::Label, ExecPhase::Identity, ExecPhase::Confine]
    );
}

#[test]
fn a_driver_listed_twice_or_an_empty_stack_is_a_config_error() {
    let l = log();
    assert!(matches!(
        SecurityManager::new(vec![], false),
        Err(Error::Config { .. })
    ));
    let e = SecurityManager::new(
        vec![
            Recording::driver("a", &l, &[]),
            Recording::driver("a", &l, &[]),
        ],
        false,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config { .. }));
}
