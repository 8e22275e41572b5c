//! The store's capability traits for [`SqlStore`]: reads served by the
//! read cache where it is exact or confirmed, the rest by the database;
//! commits handed to the backend's writer.

use super::*;

impl CommitStore for SqlStore {
    async fn next_id(&self, kind: IdKind) -> StoreResult<i64> {
        self.serial(kind.name()).await
    }

    async fn confirm(&self, robot: &str, run: Option<Key>) -> StoreResult<bool> {
        // SQLite's memory is exact: this store is its file's only writer.
        let Some(m) = self
            .inner
            .mirror
            .as_ref()
            .filter(|_| self.inner.backend == Backend::Postgres)
        else {
            return Ok(false);
        };
        let mut fresh = Vec::new();
        if let Some(r) = self.one::<Robot>(queries::ROBOT_BY_CODE, Val::S(robot.into())).await? {
            fresh.push(Write::Robot(r));
        }
        if let Some(k) = run
            && let Some(j) = self.one::<Job>(queries::JOB_BY_KEY, Val::S(k.to_string())).await?
        {
            fresh.push(Write::Job(j));
        }
        m.refresh(fresh);
        Ok(true)
    }

    async fn commit(&self, mut c: Commit) -> StoreResult<()> {
        if c.is_empty() {
            return Ok(());
        }
        if let Some(key) = &self.inner.secret_key {
            for w in &mut c.writes {
                match w {
                    Write::Vendor(v) => v.secret = seal(key, &v.secret)?,
                    Write::Record(r) if r.kind.sealed => r.data = seal(key, &r.data)?.into(),
                    _ => {}
                }
            }
        }
        let (done, result) = oneshot::channel();
        match &self.inner.writer {
            Writer::Pool(w, _) => {
                let mut seqs = Vec::with_capacity(c.commands.len());
                for _ in &c.commands {
                    seqs.push(self.serial("outbox").await?);
                }
                let changes = postgres::cache::Changes::of(&c);
                let planned = plan::plan(&mut c, self.inner.backend, &seqs)?;
                w.send(postgres::Pending {
                    planned,
                    writes: c.writes,
                    changes,
                    done,
                })
                .await
                .map_err(stopped)?;
            }
            Writer::Thread(w) => {
                // The writer numbers outbox rows itself, in commit order.
                let seqs = vec![0; c.commands.len()];
                let planned = plan::plan(&mut c, self.inner.backend, &seqs)?;
                w.send(sqlite::Work::Commit {
                    planned,
                    commit: c,
                    done,
                })
                .await
                .map_err(stopped)?;
            }
        }
        result.await.map_err(stopped)?
    }
}

impl PeopleStore for SqlStore {
    async fn token(&self, hash: [u8; 32]) -> StoreResult<Option<Token>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.token(hash));
        self.point(memory, queries::TOKEN, Val::S(hex::encode(hash)), Write::Token)
            .await
    }
}

impl ProcessStore for SqlStore {
    async fn process(&self, id: ProcessId) -> StoreResult<Option<Process>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.process(id));
        self.point(memory, queries::PROCESS, Val::I(id.0), Write::Process).await
    }
    async fn process_by_key(&self, key: Key) -> StoreResult<Option<Process>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.process_by_key(key));
        self.point(memory, queries::PROCESS_BY_KEY, Val::S(key.to_string()), Write::Process)
            .await
    }
    async fn processes(&self) -> StoreResult<Vec<Process>> {
        if let Some(m) = &self.inner.mirror {
            return m.processes().await;
        }
        self.many("SELECT data FROM rpa_processes_v ORDER BY id", Vec::new())
            .await
    }
}

impl JobStore for SqlStore {
    async fn job(&self, id: JobId) -> StoreResult<Option<Job>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.job(id).await?
        {
            return Ok(Some(found));
        }
        self.one(queries::JOB, Val::I(id.0)).await
    }
    async fn job_by_key(&self, key: Key) -> StoreResult<Option<Job>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.job_by_key(key).await?
        {
            return Ok(Some(found));
        }
        self.one(queries::JOB_BY_KEY, Val::S(key.to_string())).await
    }
    async fn jobs_of_process(&self, q: JobQuery) -> StoreResult<(u64, Vec<Job>)> {
        let (count_sql, sql) = match q.state {
            Some(_) => (queries::JOB_STATE_WINDOW_COUNT, queries::JOB_STATE_WINDOW),
            None => (queries::JOB_WINDOW_COUNT, queries::JOB_WINDOW),
        };
        let mut args = vec![Val::I(q.process.0), Val::I(q.from.0), Val::I(q.to.0)];
        args.extend(q.state.map(|s| Val::S(s.as_str().into())));
        let total = self.inner.read.int(count_sql, args.clone()).await?.unwrap_or(0);
        args.push(Val::I(limit(q.limit)));
        let jobs = self.many(sql, args).await?;
        Ok((u64::try_from(total).unwrap_or(0), jobs))
    }
    async fn job_counts(
        &self,
        process: ProcessId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<(JobState, u64)>> {
        let rows = self
            .inner
            .read
            .rows(
                "SELECT state, COUNT(*) FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3 GROUP BY state",
                vec![Val::I(process.0), Val::I(from.0), Val::I(to.0)],
                &[ColumnType::Text, ColumnType::Int][..],
            )
            .await?;
        let counted = |s: JobState| {
            rows.iter().find_map(|r| match r.as_slice() {
                [Cell::Text(name), Cell::Int(n)] if name == s.as_str() => Some(*n),
                _ => None,
            })
        };
        Ok(JobState::ALL
            .into_iter()
            .filter_map(|s| {
                let n = counted(s)?;
                (n > 0).then_some((s, n as u64))
            })
            .collect())
    }
    // Dispatch reads memory only (see the module docs).
    async fn next_pending(&self, processes: &[ProcessId]) -> StoreResult<Option<Job>> {
        self.memory()?.next_pending(processes).await
    }
    async fn pending_heads(&self, processes: &[ProcessId], n: usize) -> StoreResult<Vec<JobId>> {
        self.memory()?.pending_heads(processes, n).await
    }
    async fn pending_count(&self, process: ProcessId) -> StoreResult<u64> {
        self.memory()?.pending_count(process).await
    }
    async fn next_pinned(&self, robot: RobotId) -> StoreResult<Option<Job>> {
        self.memory()?.next_pinned(robot).await
    }
    async fn pinned_robots(&self) -> StoreResult<Vec<RobotId>> {
        self.memory()?.pinned_robots().await
    }
}

impl QueueStore for SqlStore {
    async fn items_of_process(&self, process: ProcessId, n: usize) -> StoreResult<Vec<QueueItem>> {
        self.many(
            "SELECT data FROM rpa_items WHERE process = $1 ORDER BY id DESC LIMIT $2",
            vec![Val::I(process.0), Val::I(limit(n))],
        )
        .await
    }
    async fn item(&self, id: QueueItemId) -> StoreResult<Option<QueueItem>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.item(id).await?
        {
            return Ok(Some(found));
        }
        self.one("SELECT data FROM rpa_items WHERE id = $1", Val::I(id.0)).await
    }
    async fn item_by_key(&self, key: Key) -> StoreResult<Option<QueueItem>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.item_by_key(key).await?
        {
            return Ok(Some(found));
        }
        self.one("SELECT data FROM rpa_items WHERE key = $1", Val::S(key.to_string()))
            .await
    }
    async fn item_by_reference(&self, process: ProcessId, reference: &str) -> StoreResult<Option<QueueItem>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.item_by_reference(process, reference).await?
        {
            return Ok(Some(found));
        }
        self.inner
            .read
            .first(
                queries::ITEM_BY_REFERENCE,
                vec![Val::I(process.0), Val::S(reference.into())],
            )
            .await
    }
}

impl RobotStore for SqlStore {
    async fn robot(&self, id: RobotId) -> StoreResult<Option<Robot>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.robot(id));
        self.point(memory, queries::ROBOT, Val::I(id.0), Write::Robot).await
    }
    async fn robot_by_code(&self, code: &str) -> StoreResult<Option<Robot>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.robot_by_code(code));
        self.point(memory, queries::ROBOT_BY_CODE, Val::S(code.into()), Write::Robot)
            .await
    }
    async fn robots(&self) -> StoreResult<Vec<Robot>> {
        if let Some(m) = &self.inner.mirror {
            return m.robots().await;
        }
        self.many("SELECT data FROM rpa_robots ORDER BY id", Vec::new()).await
    }
    async fn available_robots(&self, after: Option<RobotId>, n: usize) -> StoreResult<Vec<Robot>> {
        self.memory()?.available_robots(after, n).await
    }
    async fn vendor_by_code(&self, code: &str) -> StoreResult<Option<Vendor>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.vendor_by_code(code));
        let v = self
            .point(
                memory,
                "SELECT data FROM rpa_vendors WHERE code = $1",
                Val::S(code.into()),
                Write::Vendor,
            )
            .await?;
        v.map(|v| {
            Ok(Vendor {
                secret: unseal(self.inner.secret_key.as_ref(), &v.secret)?,
                ..v
            })
        })
        .transpose()
    }
}

impl RunStore for SqlStore {
    async fn logs(&self, job: JobId) -> StoreResult<Vec<RunLog>> {
        // A finish seals its job's run log: most jobs have none, and this
        // spares each of them a read (a thread hop there and back).
        if self.whole().is_some_and(|m| m.has_no_logs(job)) {
            return Ok(Vec::new());
        }
        self.many(queries::LOGS, vec![Val::I(job.0)]).await
    }
    async fn videos(&self, job: JobId) -> StoreResult<Vec<VideoRecord>> {
        self.many(
            "SELECT data FROM rpa_videos WHERE job = $1 ORDER BY at",
            vec![Val::I(job.0)],
        )
        .await
    }
}

impl DeadlineStore for SqlStore {
    async fn due(&self, now: Timestamp, n: usize) -> StoreResult<Vec<Due>> {
        if let Some(m) = self.whole() {
            return m.due(now, n).await;
        }
        let at = Val::I(now.0);
        let rows = self
            .inner
            .read
            .rows(
                queries::DUE,
                vec![at.clone(), at.clone(), at.clone(), at, Val::I(limit(n))],
                &[ColumnType::Int, ColumnType::Int, ColumnType::Int, ColumnType::Text][..],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(match r.as_slice() {
                    [_, Cell::Int(0), Cell::Int(id), _] => Due::RobotSilent(RobotId(*id)),
                    [_, Cell::Int(1), Cell::Int(id), _] => Due::JobExpired(JobId(*id)),
                    [_, Cell::Int(2), Cell::Int(id), _] => Due::JobReady(JobId(*id)),
                    [_, _, _, Cell::Text(hex)] => {
                        let mut hash = [0u8; 32];
                        hex::decode_to_slice(hex, &mut hash)
                            .map_err(|e| StoreError::Backend(format!("session hash: {e}")))?;
                        Due::TokenExpired(hash)
                    }
                    _ => return Err(StoreError::Backend("decode: a malformed deadline".into())),
                })
            })
            .collect()
    }
    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        if let Some(m) = self.whole() {
            return m.next_due().await;
        }
        Ok(self.inner.read.int(queries::NEXT_DUE, Vec::new()).await?.map(Timestamp))
    }
}

impl OutboxStore for SqlStore {
    async fn take_commands(&self, robot: RobotId, n: usize) -> StoreResult<Vec<Command>> {
        if let (Some(m), Writer::Thread(w)) = (&self.inner.mirror, &self.inner.writer) {
            let taken = m.take_commands(robot, n).await?;
            if !taken.is_empty() {
                // The same commands are the robot's oldest rows: deleted in
                // the writer's next group, before this answer.
                let (done, result) = oneshot::channel();
                w.send(sqlite::Work::Taken {
                    robot,
                    n: taken.len(),
                    done,
                })
                .await
                .map_err(stopped)?;
                result.await.map_err(stopped)??;
            }
            return Ok(taken);
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        // Most heartbeats find nothing: a delete that deletes nothing writes
        // nothing and waits for no flush, so no look first.
        let takes = self.inner.takes.as_ref().ok_or_else(|| take::stopped(()))?;
        let (done, answer) = oneshot::channel();
        takes
            .send(take::Request { robot, n, done })
            .await
            .map_err(take::stopped)?;
        answer.await.map_err(take::stopped)?
    }
}

impl SqlStore {
    /// PostgreSQL: integrates what waits before the chain is read, so that
    /// a read sees every event committed before it (see [`AuditStore`]). A
    /// failure is logged and the chain read as it is: the integrator and
    /// the chain's verification say what is wrong.
    async fn integrated(&self) {
        if let Some(i) = &self.inner.integrator
            && let Err(e) = i.integrate().await
        {
            tracing::warn!(error = %e, "cannot integrate the audit events before reading the chain");
        }
    }
}

impl AuditStore for SqlStore {
    async fn head(&self) -> StoreResult<u64> {
        self.integrated().await;
        if let Writer::Pool(_, pool) = &self.inner.writer {
            return postgres::head(pool).await;
        }
        let n = self
            .inner
            .read
            .int("SELECT COALESCE(MAX(seq), 0) FROM rpa_audit", Vec::new())
            .await?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn audit(&self, after: u64, n: usize) -> StoreResult<Vec<AuditEvent>> {
        self.integrated().await;
        if let Writer::Pool(_, pool) = &self.inner.writer {
            return postgres::chain(pool, after, n).await;
        }
        self.many(
            "SELECT data FROM rpa_audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            vec![Val::I(i64::try_from(after).unwrap_or(i64::MAX)), Val::I(limit(n))],
        )
        .await
    }

    async fn integrate(&self) -> StoreResult<Integrated> {
        match &self.inner.integrator {
            Some(i) => i.integrate().await,
            None => Ok(Integrated::default()),
        }
    }

    async fn unintegrated(&self) -> StoreResult<Unintegrated> {
        match &self.inner.writer {
            Writer::Pool(_, pool) => postgres::unintegrated(pool).await,
            Writer::Thread(_) => Ok(Unintegrated::default()),
        }
    }
}

impl LeaseStore for SqlStore {
    async fn lease(&self, name: &str, holder: u64, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        match &self.inner.writer {
            Writer::Thread(w) => {
                let (done, answer) = oneshot::channel();
                let name = name.to_owned();
                w.send(sqlite::Work::Lease {
                    name,
                    holder,
                    now,
                    until,
                    done,
                })
                .await
                .map_err(stopped)?;
                answer.await.map_err(stopped)?
            }
            Writer::Pool(_, pool) => {
                if let Some(l) = &self.inner.leases {
                    return l.lease(name, holder, now.0, until.0).await;
                }
                let row = sqlx::query(queries::LEASE)
                    .bind(name)
                    .bind(holder as i64)
                    .bind(until.0)
                    .bind(now.0)
                    .fetch_optional(pool)
                    .await
                    .map_err(backend_err)?;
                Ok(row.is_some())
            }
        }
    }

    async fn lease_holder(&self, name: &str, now: Timestamp) -> StoreResult<Option<u64>> {
        if let Some(l) = &self.inner.leases {
            return l.holder(name, now.0).await;
        }
        let holder = self
            .inner
            .read
            .int(queries::LEASE_HOLDER, vec![Val::S(name.into()), Val::I(now.0)])
            .await?;
        Ok(holder.map(|h| h as u64))
    }

    async fn lease_holders(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<u64>> {
        let pattern = format!("{}%", like_escaped(prefix));
        if let Some(l) = &self.inner.leases {
            return l.holders(&pattern, now.0).await;
        }
        let rows = self
            .inner
            .read
            .rows(
                queries::LEASE_HOLDERS,
                vec![Val::S(pattern), Val::I(now.0)],
                &[ColumnType::Int][..],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.first() {
                Some(Cell::Int(h)) => Some(*h as u64),
                _ => None,
            })
            .collect())
    }
}

/// `s` matched literally by `LIKE` with backslash as its escape character.
fn like_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
