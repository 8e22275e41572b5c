//! How the nodes of one cluster share the pending jobs they dispatch.
//!
//! Every node dispatches from its own cache of the store, which learns the
//! other nodes' commits a moment late. Nodes that all reach for the best
//! pending job at once are all refused but one at commit (their snapshot
//! is stale) and decide again: at two nodes under a backlog four commits in
//! ten were. So each live node takes the jobs of its own *share* first:
//!
//! - The live nodes (those holding their lease `node:<id>`) are ranked by
//!   number; a job belongs to the node whose rank is the job's id modulo
//!   the number of live nodes ([`Share::owns`]). Ids are dealt out in
//!   order, so the shares are even and every node agrees on them without
//!   asking anyone (a node that has not yet seen a node join or leave is
//!   wrong for a moment: two nodes then reach for one job, and the commit
//!   decides as it always does).
//! - A node looks at the best `nodes × (its claims + 1)` dispatchable
//!   heads ([`Share::window`]) and takes the best free one of its share
//!   ([`pick`]); when they hold none, the best free one.
//! - A job of another share at the head waits for its node, but not for
//!   ever: once this node has passed it by [`Share::patience`] times in a
//!   row, it takes it (its node may have no robot for it, or be gone).
//! - When the heads hold no job of this node's share, the best one is
//!   taken at once if its node keeps no idle robot (as far as this node's
//!   copy knows: that node is busy, and the job should not wait for it);
//!   if its node has one, that node takes it in a moment (it hears of the
//!   job when it is committed), and this node passes it by, as above.
//!
//! So on one node nothing changes (everything is its share), and on several
//! a job starts behind at most `patience` later jobs per node, each of
//! which a node took instead of reaching for the same job as another.
//!
//! Robots are shared by their sockets: a node gives jobs only to the idle
//! robots it keeps ([`first_choice`]: their socket is here, or they are
//! HTTP robots, which any node may serve). A robot whose socket another
//! node holds is that node's to fill, when it frees up or when that node
//! hears of a job that waits (on PostgreSQL each node is told of the
//! others' commits within milliseconds, and dispatches then); so two nodes
//! never reach for one WebSocket robot.

use crate::ids::JobId;
use crate::model::Robot;
use crate::robot;

/// Whether node `node` may give `robot` a job: no other node holds its
/// socket.
pub fn first_choice(robot: &Robot, node: u64) -> bool {
    robot::keeper(robot).is_none_or(|k| k == node)
}

/// This node's place among the live nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// How many live nodes have a smaller number.
    pub rank: u64,
    /// How many nodes live (at least 1: this one).
    pub nodes: u64,
}

impl Share {
    /// A node alone: every job is its share.
    pub const ALONE: Share = Share { rank: 0, nodes: 1 };

    /// Node `own`'s share among the holders of live node leases `live`
    /// (in any order; `own` counts whether it is listed or not).
    pub fn new(own: u64, live: &[u64]) -> Share {
        let mut ids: Vec<u64> = live.to_vec();
        ids.push(own);
        ids.sort_unstable();
        ids.dedup();
        Share {
            rank: ids.iter().take_while(|&&id| id < own).count() as u64,
            nodes: ids.len() as u64,
        }
    }

    /// Whether `job` is this node's to take first.
    pub fn owns(&self, job: JobId) -> bool {
        self.nodes <= 1 || self.rank_of(job) == self.rank
    }

    /// The rank of the node whose share `job` is.
    pub fn rank_of(&self, job: JobId) -> u64 {
        job.0.rem_euclid(self.nodes.max(1) as i64) as u64
    }

    /// How many dispatchable heads to look at while this node's own
    /// dispatches hold `claimed` jobs: one per node for each of them and
    /// for this one.
    pub fn window(&self, claimed: usize) -> usize {
        (self.nodes as usize).saturating_mul(claimed + 1)
    }

    /// How many times in a row this node passes the best job by before it
    /// takes it although it is another node's.
    pub fn patience(&self) -> u32 {
        4 * self.nodes.min(64) as u32
    }
}

/// The best job a node passed by, and how many times in a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Passed {
    job: Option<JobId>,
    times: u32,
}

/// The job to take among `free`, the dispatchable heads no dispatch of this
/// node holds, best first; notes in `passed` the best one it passes by.
/// `owner_ready(job)`: whether the node whose share `job` is keeps an idle
/// robot. `None` with `free` not empty: this node passes them all by.
pub fn pick(share: Share, free: &[JobId], passed: &mut Passed, owner_ready: impl Fn(JobId) -> bool) -> Option<JobId> {
    let best = *free.first()?;
    if share.owns(best) {
        *passed = Passed::default();
        return Some(best);
    }
    let times = if passed.job == Some(best) { passed.times + 1 } else { 1 };
    let mine = free.iter().copied().find(|&j| share.owns(j));
    match mine {
        Some(j) if times <= share.patience() => {
            *passed = Passed { job: Some(best), times };
            Some(j)
        }
        None if times <= share.patience() && owner_ready(best) => {
            *passed = Passed { job: Some(best), times };
            None
        }
        _ => {
            *passed = Passed::default();
            Some(best)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No other node keeps an idle robot.
    fn busy(_: JobId) -> bool {
        false
    }

    fn ids(v: &[i64]) -> Vec<JobId> {
        v.iter().map(|&i| JobId(i)).collect()
    }

    #[test]
    fn ranks_count_the_node_itself_once() {
        assert_eq!(Share::new(7, &[]), Share::ALONE);
        assert_eq!(Share::new(2, &[3, 1, 2]), Share { rank: 1, nodes: 3 });
        assert_eq!(Share::new(2, &[3, 1]), Share { rank: 1, nodes: 3 });
        assert_eq!(Share::new(9, &[3, 1, 9, 9]), Share { rank: 2, nodes: 3 });
    }

    #[test]
    fn shares_cover_every_job_exactly_once() {
        let live = [4, 11, 2, 7];
        let shares: Vec<Share> = live.iter().map(|&n| Share::new(n, &live)).collect();
        for job in 0..1000 {
            let owners = shares.iter().filter(|s| s.owns(JobId(job))).count();
            assert_eq!(owners, 1, "job {job}");
        }
        assert!((0..1000).all(|j| Share::ALONE.owns(JobId(j))));
    }

    #[test]
    fn a_node_alone_takes_the_best() {
        let mut passed = Passed::default();
        assert_eq!(pick(Share::ALONE, &ids(&[5, 2, 9]), &mut passed, busy), Some(JobId(5)));
        assert_eq!(pick(Share::ALONE, &[], &mut passed, busy), None);
        assert_eq!(Share::ALONE.window(0), 1);
        assert_eq!(Share::ALONE.window(3), 4);
    }

    #[test]
    fn two_nodes_take_different_jobs_from_the_same_heads() {
        let heads = ids(&[10, 11, 12, 13]);
        let (a, b) = (Share::new(1, &[1, 2]), Share::new(2, &[1, 2]));
        let taken_a = pick(a, &heads, &mut Passed::default(), busy);
        let taken_b = pick(b, &heads, &mut Passed::default(), busy);
        assert_eq!((taken_a, taken_b), (Some(JobId(10)), Some(JobId(11))));
    }

    #[test]
    fn a_job_whose_node_has_an_idle_robot_is_left_to_it() {
        let odd = Share::new(2, &[1, 2]);
        let ready = |_: JobId| true;
        let mut passed = Passed::default();
        for _ in 0..odd.patience() {
            assert_eq!(pick(odd, &ids(&[10, 12]), &mut passed, ready), None);
        }
        // Its node never came for it: taken after all.
        assert_eq!(pick(odd, &ids(&[10, 12]), &mut passed, ready), Some(JobId(10)));
        // A node with a job of its own share still takes that one.
        assert_eq!(
            pick(odd, &ids(&[10, 11]), &mut Passed::default(), ready),
            Some(JobId(11))
        );
    }

    #[test]
    fn without_a_job_of_its_share_a_node_takes_the_best() {
        let odd = Share::new(2, &[1, 2]);
        let mut passed = Passed::default();
        assert_eq!(pick(odd, &ids(&[10, 12]), &mut passed, busy), Some(JobId(10)));
        assert_eq!(passed, Passed::default());
    }

    #[test]
    fn a_job_whose_node_never_comes_is_taken_after_patience() {
        // Node 1 (even jobs) has no robot: job 11 heads the line while node
        // 2 keeps finding even jobs behind it.
        let even = Share::new(1, &[1, 2]);
        let mut passed = Passed::default();
        let mut next_even = 12;
        let mut took = Vec::new();
        loop {
            let heads = ids(&[11, next_even]);
            let j = pick(even, &heads, &mut passed, busy).unwrap();
            took.push(j.0);
            if j == JobId(11) {
                break;
            }
            next_even += 2;
        }
        assert_eq!(took.len() as u32, even.patience() + 1);
        assert_eq!(took.last(), Some(&11));
        // Then the count starts again for the next one passed by.
        assert_eq!(passed, Passed::default());
    }

    #[test]
    fn passing_a_different_best_starts_counting_again() {
        let even = Share::new(1, &[1, 2]);
        let mut passed = Passed::default();
        for _ in 0..even.patience() {
            assert_eq!(pick(even, &ids(&[11, 12]), &mut passed, busy), Some(JobId(12)));
        }
        // Job 11 was taken by its node: job 13 heads the line now.
        assert_eq!(pick(even, &ids(&[13, 14]), &mut passed, busy), Some(JobId(14)));
        assert_eq!(pick(even, &ids(&[13, 16]), &mut passed, busy), Some(JobId(16)));
    }
}
