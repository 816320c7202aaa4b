//! Domain rows: where each domain is in its lifecycle, with the caller's typed record.

use rusqlite::{params, OptionalExtension, Row};

use super::{DomainRow, Phase, Tx};
use crate::error::Result;

impl Phase {
    fn as_sql(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
            Phase::Held => "held",
        }
    }

    fn from_sql(s: &str) -> Option<Phase> {
        Some(match s {
            "starting" => Phase::Starting,
            "running" => Phase::Running,
            "stopping" => Phase::Stopping,
            "held" => Phase::Held,
            _ => return None,
        })
    }
}

type RawDomain = (String, String, Vec<u8>, Option<i64>, String, Option<String>);

const COLUMNS: &str = "SELECT name, phase, record, pid, boot_id, held_reason FROM domains";

fn raw(r: &Row<'_>) -> rusqlite::Result<RawDomain> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

impl Tx<'_> {
    fn domain_row(&self, raw: RawDomain) -> Result<DomainRow> {
        let (name, phase, record, pid, boot_id, held_reason) = raw;
        let phase = Phase::from_sql(&phase).ok_or_else(|| {
            self.db
                .corrupt(format!("domain {name} has phase {phase:?}"))
        })?;
        let pid = pid
            .map(u32::try_from)
            .transpose()
            .map_err(|_| self.db.corrupt(format!("domain {name} has an invalid pid")))?;
        Ok(DomainRow {
            name,
            phase,
            record,
            pid,
            boot_id,
            held_reason,
        })
    }

    /// The row of domain `name`, if there is one.
    pub fn domain(&self, name: &str) -> Result<Option<DomainRow>> {
        let raw = self.with(|c| {
            c.prepare_cached(&format!("{COLUMNS} WHERE name = ?1"))
                .and_then(|mut s| s.query_row([name], raw).optional())
                .map_err(self.db.err("read a domain from"))
        })?;
        raw.map(|r| self.domain_row(r)).transpose()
    }

    /// Every domain row, sorted by name.
    pub fn domains(&self) -> Result<Vec<DomainRow>> {
        let raws = self.with(|c| {
            c.prepare_cached(&format!("{COLUMNS} ORDER BY name"))
                .and_then(|mut s| s.query_map([], raw)?.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(self.db.err("list the domains in"))
        })?;
        raws.into_iter().map(|r| self.domain_row(r)).collect()
    }

    /// Insert the row, or replace the row of the same name.
    pub fn put_domain(&self, row: &DomainRow) -> Result<()> {
        self.writable("write a domain through a read transaction on")?;
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO domains(name, phase, record, pid, boot_id, held_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET phase = excluded.phase,
                    record = excluded.record, pid = excluded.pid,
                    boot_id = excluded.boot_id, held_reason = excluded.held_reason",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row.name,
                    row.phase.as_sql(),
                    row.record,
                    row.pid,
                    row.boot_id,
                    row.held_reason
                ])
            })
            .map(drop)
            .map_err(self.db.err("write a domain to"))
        })
    }

    /// Remove the row of domain `name` (nothing when there is none).
    pub fn delete_domain(&self, name: &str) -> Result<()> {
        self.writable("delete a domain through a read transaction on")?;
        self.with(|c| {
            c.prepare_cached("DELETE FROM domains WHERE name = ?1")
                .and_then(|mut s| s.execute([name]))
                .map(drop)
                .map_err(self.db.err("delete a domain from"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Db;
    use super::*;
    use crate::error::Error;

    fn row(name: &str, phase: Phase) -> DomainRow {
        DomainRow {
            name: name.into(),
            phase,
            record: format!("{{\"name\":\"{name}\"}}").into_bytes(),
            pid: Some(42),
            boot_id: "boot-1".into(),
            held_reason: None,
        }
    }

    #[test]
    fn domain_rows_round_trip_sorted_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.write(|tx| {
            tx.put_domain(&row("b", Phase::Starting))?;
            tx.put_domain(&row("a", Phase::Running))
        })
        .unwrap();
        let held = DomainRow {
            phase: Phase::Held,
            pid: None,
            held_reason: Some("/srv/disk could not be restored".into()),
            ..row("b", Phase::Held)
        };
        db.write(|tx| tx.put_domain(&held)).unwrap();
        let db = Db::open(dir.path()).unwrap();
        let all = db.read(|tx| tx.domains()).unwrap();
        assert_eq!(all, vec![row("a", Phase::Running), held.clone()]);
        assert_eq!(db.read(|tx| tx.domain("b")).unwrap(), Some(held));
        db.write(|tx| tx.delete_domain("b")).unwrap();
        assert_eq!(db.read(|tx| tx.domain("b")).unwrap(), None);
    }

    #[test]
    fn a_read_transaction_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let err = db
            .read(|tx| tx.put_domain(&row("a", Phase::Running)))
            .unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        assert!(db.read(|tx| tx.domains()).unwrap().is_empty());
    }
}
