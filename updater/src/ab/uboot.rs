//! `UBootEnvFlow`: boot counting in a U-Boot environment, driven by the boot script
//! `bootloader-envs/uboot/ab-boot.txt` that the user installs as `bootcmd`.
//!
//! Variables (all always set once the agent wrote them; U-Boot deletes empty ones):
//!
//! | name | values | meaning |
//! |---|---|---|
//! | `ab_boot` | `a`/`b` | the committed slot |
//! | `ab_try` | `a`/`b`/`none` | the slot on trial |
//! | `ab_left` | `0`..`9` | boots the trial slot has left |
//! | `ab_failed` | `a`/`b`/`none` | the slot whose trial ran out |
//!
//! The script decrements `ab_left` and saves before booting the trial slot; with none
//! left it sets `ab_failed`, clears `ab_try` and boots `ab_boot`. It writes the
//! environment only during a trial, so a confirmed system causes no writes at boot.
//! Every change here is a single environment save, which the engine makes atomic on a
//! redundant environment (the new copy is verified before it becomes current).

use liminix_bootenv::{Env, EnvStore};

use super::flow::{BootFlow, FlowState};
use super::slot::Slot;
use super::{AbError, ConfigError, RefusedError};

/// Variable names of the protocol.
pub const VAR_BOOT: &str = "ab_boot";
pub const VAR_TRY: &str = "ab_try";
pub const VAR_LEFT: &str = "ab_left";
pub const VAR_FAILED: &str = "ab_failed";
const NONE: &str = "none";

/// The U-Boot environment boot flow.
pub struct UBootEnvFlow {
    store: EnvStore,
    attempts: u8,
}

impl UBootEnvFlow {
    /// `attempts`: boots a new slot gets (1..=9: the script's `setexpr` counts in hex
    /// while `test` compares in decimal, which agree only on single digits).
    pub fn new(store: EnvStore, attempts: u8) -> Result<Self, AbError> {
        if !(1..=9).contains(&attempts) {
            return Err(ConfigError::Attempts(attempts).into());
        }
        Ok(UBootEnvFlow { store, attempts })
    }

    /// The environment store (tests inspect it).
    pub fn store(&mut self) -> &mut EnvStore {
        &mut self.store
    }

    fn load(&mut self) -> Result<Env, AbError> {
        Ok(self
            .store
            .load()
            .map_err(AbError::boot("load U-Boot environment"))?
            .env)
    }

    /// Loads, edits, and saves once if anything changed.
    fn update(&mut self, change: impl FnOnce(&mut Env)) -> Result<(), AbError> {
        let old = self.load()?;
        let mut new = old.clone();
        change(&mut new);
        if new != old {
            self.store
                .save(&new)
                .map_err(AbError::boot("save U-Boot environment"))?;
        }
        Ok(())
    }
}

fn set(env: &mut Env, name: &str, value: &str) {
    // Names and values are constants or slot names: they are always valid.
    env.set(name.as_bytes(), value.as_bytes())
        .expect("protocol variables are valid");
}

/// The script exports exactly these variables, so all must exist (U-Boot has no
/// empty variables).
fn defaults(env: &mut Env) {
    for (name, value) in [
        (VAR_BOOT, "a"),
        (VAR_TRY, NONE),
        (VAR_LEFT, "0"),
        (VAR_FAILED, NONE),
    ] {
        if env.get(name.as_bytes()).is_none() {
            set(env, name, value);
        }
    }
}

fn slot_var(env: &Env, name: &str) -> Option<Slot> {
    env.get_str(name).as_deref().and_then(Slot::parse)
}

/// The state an environment describes (an environment without `ab_boot` boots A, as
/// the script's defaults do).
pub fn uboot_state(env: &Env) -> FlowState {
    let left = env
        .get_str(VAR_LEFT)
        .and_then(|v| v.trim().parse::<u8>().ok())
        .unwrap_or(0);
    let failed = slot_var(env, VAR_FAILED);
    FlowState {
        committed: slot_var(env, VAR_BOOT).unwrap_or(Slot::A),
        trying: slot_var(env, VAR_TRY).map(|s| (s, left)),
        failed: Slot::ALL.map(|s| failed == Some(s)),
    }
}

/// What the boot script does at one reset: the slot it boots, and the environment it
/// saves first if it changes anything. Written from `ab-boot.txt`; the QEMU tests check
/// the real script against the same scenarios.
pub fn script_boot_decision(env: &Env) -> (Slot, Option<Env>) {
    let st = uboot_state(env);
    match st.trying {
        Some((slot, left)) if left > 0 => {
            let mut next = env.clone();
            set(&mut next, VAR_LEFT, &(left - 1).to_string());
            (slot, Some(next))
        }
        Some((slot, _)) => {
            let mut next = env.clone();
            set(&mut next, VAR_FAILED, slot.name());
            set(&mut next, VAR_TRY, NONE);
            (st.committed, Some(next))
        }
        None => (st.committed, None),
    }
}

impl BootFlow for UBootEnvFlow {
    fn name(&self) -> &'static str {
        "uboot-env"
    }

    fn state(&mut self) -> Result<FlowState, AbError> {
        Ok(uboot_state(&self.load()?))
    }

    fn prepare_write(&mut self, slot: Slot) -> Result<(), AbError> {
        let env = self.load()?;
        if uboot_state(&env).committed == slot {
            return Err(RefusedError::Committed(slot).into());
        }
        self.update(|env| {
            set(env, VAR_BOOT, slot.other().name());
            if slot_var(env, VAR_TRY) == Some(slot) {
                set(env, VAR_TRY, NONE);
                set(env, VAR_LEFT, "0");
            }
            defaults(env);
        })
    }

    fn try_next(&mut self, slot: Slot) -> Result<(), AbError> {
        let attempts = self.attempts.to_string();
        self.update(|env| {
            set(env, VAR_TRY, slot.name());
            set(env, VAR_LEFT, &attempts);
            if slot_var(env, VAR_FAILED) == Some(slot) {
                set(env, VAR_FAILED, NONE);
            }
            defaults(env);
        })
    }

    fn mark_good(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|env| {
            set(env, VAR_BOOT, slot.name());
            set(env, VAR_TRY, NONE);
            set(env, VAR_LEFT, "0");
            if slot_var(env, VAR_FAILED) == Some(slot) {
                set(env, VAR_FAILED, NONE);
            }
            defaults(env);
        })
    }

    fn mark_bad(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|env| {
            if slot_var(env, VAR_TRY) == Some(slot) {
                set(env, VAR_TRY, NONE);
                set(env, VAR_LEFT, "0");
            }
            if slot_var(env, VAR_BOOT) == Some(slot) {
                set(env, VAR_BOOT, slot.other().name());
            }
            set(env, VAR_FAILED, slot.name());
        })
    }

    fn set_committed(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|env| {
            set(env, VAR_BOOT, slot.name());
            set(env, VAR_TRY, NONE);
            set(env, VAR_LEFT, "0");
        })
    }
}
