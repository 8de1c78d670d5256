//! The prompt an agent gets: the task, its files, the paths it may change, and on a retry
//! what went wrong the last time.

use orchestrator_core::model::Task;

/// Builds the prompt for `task` holding locks on `locked_paths`.
pub fn build(task: &Task, locked_paths: &[String]) -> String {
    let mut prompt = format!("# Task: {}\n\n{}\n", task.title, task.description.trim());
    if !task.files_hint.is_empty() {
        prompt.push_str("\n## Files to look at\n");
        for file in &task.files_hint {
            prompt.push_str(&format!("- {file}\n"));
        }
    }
    if !locked_paths.is_empty() {
        prompt.push_str(
            "\n## Where you may make changes\nOther agents work in this repository at the same \
             time. Change files only under these paths (a path ending in / covers everything \
             below it); a change elsewhere fails the task:\n",
        );
        for path in locked_paths {
            prompt.push_str(&format!("- {path}\n"));
        }
    }
    if task.attempt > 1
        && let Some(error) = task.last_error.as_deref().filter(|e| !e.trim().is_empty())
    {
        prompt.push_str(&format!(
            "\n## Previous attempt\nThis is attempt {}. The previous attempt failed; fix this \
             first:\n{}\n",
            task.attempt,
            error.trim()
        ));
    }
    if task.attempt > 1
        && let Some(note) = task.retry_note.as_deref()
    {
        prompt.push_str(&format!(
            "\n## Note from the person who retried this task\n{}\n",
            note.trim()
        ));
    }
    prompt.push_str(
        "\nWork in the current directory, which is this task's own git worktree. Do not \
         commit; the runner verifies and commits your changes when you finish.\n",
    );
    prompt
}

#[cfg(test)]
mod tests {
    use orchestrator_core::Timestamp;
    use orchestrator_core::ids::TaskId;
    use orchestrator_core::model::NewTask;

    use super::*;

    #[test]
    fn a_retried_task_carries_the_persons_note() {
        let mut task = NewTask::new("Fix it", "Make the build pass")
            .into_task(TaskId::new(), Timestamp::from_millis(0).unwrap());
        task.retry_note = Some("  Use four spaces.  ".into());
        assert!(
            !build(&task, &[]).contains("four spaces"),
            "a first attempt has no note yet"
        );
        task.attempt = 2;
        let prompt = build(&task, &[]);
        assert!(
            prompt.contains("\n## Note from the person who retried this task\nUse four spaces.\n"),
            "{prompt}"
        );
    }
}
