//! Taking over a data directory from a process that is gone.

use crate::store::StoreError;
use crate::store::sqlite::SqliteStore;
use rusqlite::params;

/// Releases every reservation held in the database, whatever its lease. Only for the
/// process that owns the data directory, at start-up: no other process can be using
/// them then, so each belonged to a request that died with its process (this version
/// holds reservations in memory; older versions held them in the database). Settled
/// markers stay, so a journaled settlement replayed afterwards is still applied once.
pub async fn release_every_held(db: &SqliteStore) -> Result<u64, StoreError> {
    let now = chrono::Utc::now().timestamp();
    // Ending the leases now lets the one sweep that moves counters do the release.
    db.call(move |c| {
        c.execute(
            "UPDATE reservations SET expires_at = ?1 WHERE state = 'held' AND expires_at > ?1",
            params![now],
        )?;
        Ok(())
    })
    .await?;
    db.release_all_expired(now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;
    use crate::store::{BudgetStore, conformance};

    #[tokio::test]
    async fn every_held_reservation_is_released_and_markers_stay() {
        let db = SqliteStore::open_in_memory().unwrap();
        let far = chrono::Utc::now().timestamp() + 3_600;
        let held = conformance::reservation("held", "2026-11", 40, far);
        let done = conformance::reservation("done", "2026-11", 10, far);
        for r in [&held, &done] {
            assert!(db.reserve("u", r, Some(NanoUsd(100)), 0).await.unwrap());
        }
        db.settle("u", &conformance::settlement(&done, 7))
            .await
            .unwrap();
        assert_eq!(release_every_held(&db).await.unwrap(), 1);
        let m = db.month("u", "2026-11", 0).await.unwrap();
        assert_eq!((m.spent.0, m.reserved.0), (7, 0));
        // The settled marker is still there: settling again changes nothing.
        db.settle("u", &conformance::settlement(&done, 7))
            .await
            .unwrap();
        assert_eq!(db.month("u", "2026-11", 0).await.unwrap().spent.0, 7);
    }
}
