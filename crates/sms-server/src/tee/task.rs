//! The on-chain checks shared by `/tee/challenges` and `/tee/sessions`, written once and in
//! one order: the task exists and is ACTIVE, its deal exists and has a TEE tag, the request is
//! signed by the deal's workerpool owner, and the deal's framework is the one served here.
//! Each route maps a [`TaskRefusal`] to its own wire code.

use sms_chain::{Ledger, LedgerError};
use sms_core::Address;
use sms_core::B256;
use sms_core::ledger::{Deal, Task, TaskStatus};
use sms_core::tag::TeeFramework;

/// A task that passed every check.
#[derive(Debug, Clone)]
pub struct AuthorizedTask {
    pub task_id: B256,
    pub task: Task,
    pub deal: Deal,
    pub framework: TeeFramework,
}

/// Why a task is not authorized, in check order.
#[derive(Debug)]
pub enum TaskRefusal {
    TaskUnknown(B256),
    TaskUnreadable(B256, LedgerError),
    TaskNotActive(B256, TaskStatus),
    DealUnknown(B256),
    DealUnreadable(B256, LedgerError),
    NotTee(B256),
    NotSignedByPoolOwner(Address),
    FrameworkNotServed {
        deal: TeeFramework,
        served: TeeFramework,
    },
}

impl TaskRefusal {
    /// The chain could not be read (the caller may retry), as opposed to a refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            TaskRefusal::TaskUnreadable(_, LedgerError::Unavailable(_))
                | TaskRefusal::DealUnreadable(_, LedgerError::Unavailable(_))
        )
    }
}

impl std::fmt::Display for TaskRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskRefusal::TaskUnknown(id) => write!(f, "task {id} not found"),
            TaskRefusal::TaskUnreadable(id, e) => write!(f, "task {id}: {e}"),
            TaskRefusal::TaskNotActive(id, status) => {
                write!(f, "task {id} is {status:?}, not ACTIVE")
            }
            TaskRefusal::DealUnknown(id) => write!(f, "deal {id} not found"),
            TaskRefusal::DealUnreadable(id, e) => write!(f, "deal {id}: {e}"),
            TaskRefusal::NotTee(tag) => write!(f, "deal tag {tag} selects no TEE framework"),
            TaskRefusal::NotSignedByPoolOwner(owner) => {
                write!(f, "not signed by the workerpool owner {owner}")
            }
            TaskRefusal::FrameworkNotServed { deal, served } => {
                write!(f, "the deal runs on {deal}, this SMS serves {served}")
            }
        }
    }
}

/// Runs the shared checks; `signed_by(owner)` says whether the request is signed by `owner`.
pub async fn authorize_task(
    ledger: &dyn Ledger,
    served: TeeFramework,
    task_id: B256,
    signed_by: impl Fn(Address) -> bool,
) -> Result<AuthorizedTask, TaskRefusal> {
    let task = ensure_task_active(ledger, task_id).await?;
    let deal = find_deal(ledger, task.deal_id).await?;
    let framework = ensure_tee_deal(&deal)?;
    ensure_signed_by_pool_owner(&deal, signed_by)?;
    ensure_framework_served(framework, served)?;
    Ok(AuthorizedTask {
        task_id,
        task,
        deal,
        framework,
    })
}

/// The task exists and is ACTIVE.
pub async fn ensure_task_active(ledger: &dyn Ledger, task_id: B256) -> Result<Task, TaskRefusal> {
    let task = find_task(ledger, task_id).await?;
    ensure_active(task_id, &task)?;
    Ok(task)
}

/// The task exists on chain (a task never initialized has no deal).
pub async fn find_task(ledger: &dyn Ledger, task_id: B256) -> Result<Task, TaskRefusal> {
    match ledger.task(task_id).await {
        Ok(Some(t)) if t.deal_id != B256::ZERO => Ok(t),
        Ok(_) => Err(TaskRefusal::TaskUnknown(task_id)),
        Err(e) => Err(TaskRefusal::TaskUnreadable(task_id, e)),
    }
}

/// The task's status is ACTIVE.
pub fn ensure_active(task_id: B256, task: &Task) -> Result<(), TaskRefusal> {
    if task.status != TaskStatus::Active {
        return Err(TaskRefusal::TaskNotActive(task_id, task.status));
    }
    Ok(())
}

/// The task's final deadline (0: none known) is after `now` (Unix seconds): the release rule.
pub fn ensure_before_final_deadline(task_id: B256, task: &Task, now: u64) -> Result<(), String> {
    if task.final_deadline > 0 && now >= task.final_deadline {
        return Err(format!(
            "task {task_id:#x} passed its final deadline {}",
            task.final_deadline
        ));
    }
    Ok(())
}

/// The task's deal exists (a started deal).
pub async fn find_deal(ledger: &dyn Ledger, deal_id: B256) -> Result<Deal, TaskRefusal> {
    match ledger.deal(deal_id).await {
        Ok(Some(d)) if d.start_time > 0 => Ok(d),
        Ok(_) => Err(TaskRefusal::DealUnknown(deal_id)),
        Err(e) => Err(TaskRefusal::DealUnreadable(deal_id, e)),
    }
}

/// The deal's tag selects a TEE framework.
pub fn ensure_tee_deal(deal: &Deal) -> Result<TeeFramework, TaskRefusal> {
    TeeFramework::from_tag(&deal.tag).ok_or(TaskRefusal::NotTee(deal.tag))
}

/// The request is signed by the deal's workerpool owner.
pub fn ensure_signed_by_pool_owner(
    deal: &Deal,
    signed_by: impl Fn(Address) -> bool,
) -> Result<(), TaskRefusal> {
    if !signed_by(deal.workerpool.owner) {
        return Err(TaskRefusal::NotSignedByPoolOwner(deal.workerpool.owner));
    }
    Ok(())
}

/// The deal's framework is the one this SMS serves.
pub fn ensure_framework_served(
    framework: TeeFramework,
    served: TeeFramework,
) -> Result<(), TaskRefusal> {
    if framework != served {
        return Err(TaskRefusal::FrameworkNotServed {
            deal: framework,
            served,
        });
    }
    Ok(())
}
