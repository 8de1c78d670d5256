//! The semantic review: a language model reads the task and the diff and scores how well
//! the change does the task. Off unless a pipeline adds it, advisory only (a low score
//! never fails a change), and skipped — never failed — when the model cannot answer.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};
use serde::Deserialize;

use crate::changes::patch_text;

/// A score below this marks the review as a concern.
const CONCERN_BELOW: f64 = 0.7;

/// A language model that answers one prompt; the runner's model client is one.
#[async_trait]
pub trait ReviewModel: Send + Sync + Debug + 'static {
    /// Sends the instructions and the prompt; returns the model's text, or why it could
    /// not answer.
    async fn complete(&self, system: &str, prompt: &str) -> Result<String, String>;
}

/// The semantic review as a [`Verifier`].
#[derive(Debug, Clone)]
pub struct SemanticVerifier {
    model: Arc<dyn ReviewModel>,
    /// Diff bytes sent at most; a longer diff is cut and the model told so.
    pub max_diff_bytes: usize,
    /// How long the model may take.
    pub time_limit: Duration,
}

/// What the model is asked for.
const INSTRUCTIONS: &str = "You review code changes made by an automated coding agent. \
Judge only whether the diff does what the task asks, completely and without unrelated \
changes. Answer with one JSON object and nothing else: {\"score\": <number from 0 to 1>, \
\"explanation\": \"<one or two sentences>\", \"concerns\": [\"<short concern>\", ...]}.";

/// The model's verdict.
#[derive(Debug, Deserialize)]
struct Verdict {
    score: f64,
    #[serde(default)]
    explanation: String,
    #[serde(default)]
    concerns: Vec<String>,
}

impl SemanticVerifier {
    pub fn new(model: Arc<dyn ReviewModel>) -> Self {
        Self {
            model,
            max_diff_bytes: 60_000,
            time_limit: Duration::from_secs(120),
        }
    }

    fn prompt(input: &VerificationInput, diff: &str, cut: bool) -> String {
        let cut_note = if cut {
            "\n(The diff was cut here; judge what is shown.)"
        } else {
            ""
        };
        format!(
            "Task title: {}\n\nTask description:\n{}\n\nDiff:\n```diff\n{diff}```{cut_note}\n",
            input.task_title, input.task_description
        )
    }
}

/// The first JSON object in `answer` (models sometimes wrap it in a code fence or prose).
fn verdict(answer: &str) -> Result<Verdict, String> {
    let start = answer.find('{').ok_or("the answer holds no JSON object")?;
    let mut values = serde_json::Deserializer::from_str(&answer[start..]).into_iter::<Verdict>();
    let verdict = values
        .next()
        .ok_or("the answer holds no JSON object")?
        .map_err(|err| format!("the answer is not a verdict: {err}"))?;
    if !(0.0..=1.0).contains(&verdict.score) {
        return Err(format!("the score {} is outside 0 to 1", verdict.score));
    }
    Ok(verdict)
}

fn skipped(reason: String) -> StageStatus {
    StageStatus::Skipped { reason }
}

#[async_trait]
impl Verifier for SemanticVerifier {
    fn name(&self) -> &str {
        "semantic review"
    }

    async fn verify(&self, input: &VerificationInput) -> orchestrator_core::Result<StageReport> {
        let started = Instant::now();
        let mut report = StageReport::new(
            self.name(),
            FailureKind::Semantic,
            StageStatus::Passed,
            Vec::new(),
            Duration::ZERO,
        );
        let Some(base) = input.base_commit.clone() else {
            report.status = skipped("no base commit to take the diff against".into());
            return Ok(report);
        };
        let work_dir = input.work_dir.clone();
        let max_bytes = self.max_diff_bytes;
        let diff = tokio::task::spawn_blocking(move || patch_text(&work_dir, &base, max_bytes))
            .await
            .map_err(orchestrator_core::Error::backend)?;
        let (diff, cut) = match diff {
            Ok((diff, false)) if diff.trim().is_empty() => {
                report.status = skipped("the change is empty".into());
                return Ok(report);
            }
            Ok((diff, true)) if diff.is_empty() => {
                report.status = skipped(format!(
                    "the diff's first file does not fit in the {max_bytes} bytes the review takes"
                ));
                return Ok(report);
            }
            Ok(found) => found,
            Err(err) => {
                report.status = skipped(format!("the diff could not be read: {err}"));
                return Ok(report);
            }
        };
        let prompt = Self::prompt(input, &diff, cut);
        let answer =
            tokio::time::timeout(self.time_limit, self.model.complete(INSTRUCTIONS, &prompt)).await;
        let verdict = match answer {
            Err(_) => Err(format!(
                "the review model did not answer within {} s",
                self.time_limit.as_secs()
            )),
            Ok(Err(err)) => Err(format!("the review model could not answer: {err}")),
            Ok(Ok(answer)) => verdict(&answer),
        };
        match verdict {
            Err(reason) => report.status = skipped(reason),
            Ok(verdict) => {
                report.score = Some(verdict.score);
                report.status = if verdict.score >= CONCERN_BELOW {
                    StageStatus::Passed
                } else {
                    StageStatus::Failed
                };
                let explanation = Some(verdict.explanation).filter(|e| !e.trim().is_empty());
                report.failures = explanation
                    .into_iter()
                    .chain(verdict.concerns)
                    .map(|message| VerificationFailure {
                        kind: FailureKind::Semantic,
                        message,
                        file: None,
                        line: None,
                        column: None,
                    })
                    .collect();
            }
        }
        report.duration = started.elapsed();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_from_fenced_or_bare_json() {
        let fenced = "Here you go:\n```json\n{\"score\": 0.9, \"explanation\": \"Does it.\"}\n```";
        assert_eq!(verdict(fenced).unwrap().score, 0.9);
        let bare =
            r#"{"score": 0, "explanation": "Unrelated.", "concerns": ["edits README only"]}"#;
        assert_eq!(verdict(bare).unwrap().concerns, ["edits README only"]);
        assert!(verdict("I think it is fine").is_err());
        assert!(
            verdict(r#"{"score": 7}"#)
                .unwrap_err()
                .contains("outside 0 to 1")
        );
        assert!(verdict(r#"{"explanation": "no score"}"#).is_err());
    }
}
