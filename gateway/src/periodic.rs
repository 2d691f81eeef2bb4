//! Background jobs that run on a period for as long as the runtime runs.

use std::future::Future;
use std::time::Duration;

/// Runs `job` every `secs` seconds, the first time one period from now (what is due at start
/// was done while starting), until the runtime stops. A run that overruns delays the next.
pub fn every<F, Fut>(secs: u64, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    ticking(secs, false, job);
}

/// Runs `job` now, then every `secs` seconds until the runtime stops (what must also be done
/// at start, but not hold the start up). A run that overruns delays the next.
pub fn now_and_every<F, Fut>(secs: u64, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    ticking(secs, true, job);
}

fn ticking<F, Fut>(secs: u64, now: bool, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(secs));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An interval's first tick is at once.
        if !now {
            ticks.tick().await;
        }
        loop {
            ticks.tick().await;
            job().await;
        }
    });
}
