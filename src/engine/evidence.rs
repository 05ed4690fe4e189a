//! Evidence that outlives the database: a rendered document carries the SHA-256 of its
//! case's history chain at the version it was rendered from (`render::Evidence`, in its
//! metadata and small print); checking a PDF recomputes the chain from the stored history
//! and says whether the file is one the platform produced and whether the history was
//! altered since. Knows no HTTP: `gradsign verify FILE.pdf` and `POST /api/v1/verify` share it.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    Refusal,
    documents::Verification,
    service::{Engine, Result},
};
use crate::{definition::Message, domain::FieldError, store::first_altered};

/// What a PDF is, checked against the stored documents and history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentCheck {
    /// The agreement number the document carries.
    pub number: String,
    /// The case version it was rendered from.
    pub case_version: i64,
    /// The slot the platform stored it in (`agreement`, `agreement_preview`, …).
    pub slot: String,
    /// The SHA-256 of the case's history chain printed in the document.
    pub history_sha256: String,
    /// Whether the stored history still gives that chain: every entry hashes to its stored
    /// hash, none is missing, and the entry of the document's version to the hash the
    /// document carries.
    pub history_intact: bool,
    /// The first history entry (its sequence number, the case version it made) that no
    /// longer matches, when the history was altered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altered_at: Option<i64>,
    /// The outcome in words, Chinese and English.
    pub message: Message,
    /// What the agreement is now, as `GET /api/v1/verify/{number}` says it for this copy.
    pub agreement: Verification,
}

/// The refusal of a file the platform did not produce (or that was changed since).
fn foreign() -> super::service::EngineError {
    Refusal::Invalid(vec![
        FieldError::new(
            "foreign_document",
            "此文件不是本平台生成的文件，或生成后已被修改",
            "this file is not a document the platform produced, or it was changed after",
        )
        .with_field("file"),
    ])
    .into()
}

impl Engine {
    /// Checks a PDF: its bytes must be a document the platform stored for the case its
    /// evidence names; then the case's history is hashed again, link by link.
    pub async fn verify_document(&self, pdf: &[u8]) -> Result<DocumentCheck> {
        let evidence = crate::render::read_evidence(pdf).ok_or_else(foreign)?;
        let sha = hex::encode(Sha256::digest(pdf));
        let mut tx = self.db.read().await?;
        let Some((case_id, code, _)) = tx.agreement(&evidence.number).await? else {
            return Err(foreign());
        };
        let stored = tx
            .documents(&case_id)
            .await?
            .into_iter()
            .find(|d| d.sha256 == sha && d.page == 0 && d.added_by == "system");
        let Some(stored) = stored.filter(|d| d.case_version == evidence.case_version) else {
            return Err(foreign());
        };
        let history = tx.history(&case_id).await?;
        let version = tx.case(&case_id).await?.map(|c| c.version);
        tx.rollback().await?;
        let altered_chain = first_altered(&history);
        let printed_row = history.iter().find(|h| h.seq == evidence.case_version);
        let altered_at = altered_chain
            .or_else(|| {
                // The row the document was rendered at no longer has the hash it printed.
                printed_row
                    .is_none_or(|h| h.hash.as_deref() != Some(evidence.history_sha256.as_str()))
                    .then_some(evidence.case_version)
            })
            .or_else(|| {
                // The newest entries were deleted: the case is at a version the history lacks.
                let last = history.last().map(|h| h.seq);
                (last != version).then(|| last.unwrap_or(0) + 1)
            });
        let agreement = self
            .verify(&evidence.number, &code, Some(evidence.case_version))
            .await?;
        let message = match altered_at {
            None => Message {
                zh: format!(
                    "此文件是本平台为协议书 {} 第 {} 版生成的原件，签约记录自生成以来未被改动",
                    evidence.number, evidence.case_version
                ),
                en: format!(
                    "this file is the platform's own rendering of agreement {} at version {}; its history is unaltered since",
                    evidence.number, evidence.case_version
                ),
            },
            Some(seq) => Message {
                zh: format!(
                    "此文件是本平台为协议书 {} 第 {} 版生成的原件，但平台保存的签约记录已被改动（自第 {seq} 条起）",
                    evidence.number, evidence.case_version
                ),
                en: format!(
                    "this file is the platform's own rendering of agreement {} at version {}, but the stored history was altered (from entry {seq} on)",
                    evidence.number, evidence.case_version
                ),
            },
        };
        Ok(DocumentCheck {
            number: evidence.number,
            case_version: evidence.case_version,
            slot: stored.slot,
            history_sha256: evidence.history_sha256,
            history_intact: altered_at.is_none(),
            altered_at,
            message,
            agreement,
        })
    }
}
