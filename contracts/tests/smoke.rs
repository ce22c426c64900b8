//! Smoke test: one job from creation to allocation.
mod common;

use common::{World, run};

#[test]
fn a_job_runs_and_pays() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        let job = w.create_job(2, 30).await;
        let set = w.agree(job, &w.nodes).await;
        assert_eq!(set, w.nodes);
        w.next_epoch().await;
        w.next_epoch().await;
        let alloc = w.oracles[0].allocate_rewards().await.expect("allocate");
        assert_eq!(alloc.until_epoch, w.epoch().await);
        println!("{alloc:?} {}", w.node_balance(w.nodes[0]).await);
    });
}
