//! Destination statistics (毕业去向落实率): counted from the destination records the
//! workflows wrote (R2), never typed in.

use super::service::{Engine, Result};
use crate::{
    domain::rate::{Counts, Formula, tally},
    store::{GraduateScope, GroupBy},
};

impl Engine {
    /// Graduates in `scope` per destination category and group, and the rate by
    /// `formula`, for all of them and per `group_by` key.
    pub async fn destination_statistics(
        &self,
        scope: &GraduateScope,
        group_by: GroupBy,
        formula: &Formula,
    ) -> Result<(Counts, Vec<Counts>)> {
        let mut tx = self.db.read().await?;
        let rows = tx.destination_counts(scope, group_by).await?;
        tx.rollback().await?;
        Ok(tally(&rows, formula))
    }
}
