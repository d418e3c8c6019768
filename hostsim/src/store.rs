//! The in-memory object store: every object of every resource, one global monotonic
//! resourceVersion, the change history that watches resume from, and the lifecycle rules that
//! belong to storage (uid, creationTimestamp, generation, finalizers and deletionTimestamp,
//! owner-reference garbage collection, namespace termination).
//!
//! It knows nothing about HTTP, schemas or defaults; the API layer hands it finished objects.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::error::{Error, GroupResource, Result};
use crate::object;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watches and the controller see it.
#[derive(Debug)]
pub struct Change {
    pub kind: ChangeType,
    pub gr: GroupResource,
    pub object: Value,
    /// The previous state, for modifications (lets watches with selectors turn an object
    /// moving in or out of the selection into ADDED or DELETED).
    pub old: Option<Value>,
    pub rv: u64,
}

/// What a delete did.
#[derive(Debug)]
pub enum Deletion {
    /// The object is gone; this is its last state.
    Removed(Value),
    /// The object waits for finalizers (or is a terminating namespace).
    Pending(Value),
}

type Bucket = BTreeMap<(String, String), Value>;

struct Inner {
    objects: HashMap<GroupResource, Bucket>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    /// Every change with a resourceVersion above this is still in `history`.
    floor: u64,
    history_cap: usize,
    /// Pods deleted gracefully, and when their containers will have stopped (the kubelet then
    /// removes them).
    stopping: BTreeMap<(String, String), Instant>,
    /// Namespaces the namespace controller still has to empty and finalize.
    terminating: BTreeSet<String>,
    /// How long a running pod's containers take to stop after SIGTERM (capped by its grace
    /// period).
    pod_stop_delay: Duration,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
}

/// A watch registration: changes already committed after the requested version, then the live feed.
pub struct Subscription {
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    pub rv: u64,
}

fn namespaces() -> GroupResource {
    GroupResource::new("", "namespaces")
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(history_cap.clamp(64, 16 * 1024));
        Self {
            inner: Mutex::new(Inner {
                objects: HashMap::new(),
                rv: 1,
                history: VecDeque::new(),
                floor: 1,
                history_cap: history_cap.max(16),
                stopping: BTreeMap::new(),
                terminating: BTreeSet::new(),
                pod_stop_delay: Duration::ZERO,
            }),
            tx,
        }
    }

    /// How long a running pod takes to stop once deleted (see [`Store::delete_graceful`]).
    pub fn with_pod_stop_delay(self, delay: Duration) -> Self {
        self.lock().pod_stop_delay = delay;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave an object half-written (all mutation is
        // by whole-value replacement), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(gr)
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// All objects of a resource (in one namespace, or all when `ns` is `None`), sorted by
    /// namespace and name, with the store's resourceVersion at that moment.
    pub fn list(&self, gr: &GroupResource, ns: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(gr) {
            None => Vec::new(),
            Some(b) => match ns {
                None => b.values().cloned().collect(),
                Some(ns) => b
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        };
        (items, inner.rv)
    }

    pub fn count(&self) -> usize {
        self.lock().objects.values().map(BTreeMap::len).sum()
    }

    pub fn create(&self, gr: &GroupResource, obj: Value) -> Result<Value> {
        self.create_opt(gr, obj, true)
    }

    /// Create; without `commit` only checks and returns what would be stored (dry run).
    pub fn create_opt(&self, gr: &GroupResource, mut obj: Value, commit: bool) -> Result<Value> {
        let mut inner = self.lock();
        let ns = object::namespace(&obj).to_string();
        let mut name = object::name(&obj).to_string();
        if name.is_empty() {
            let prefix = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            name = format!("{prefix}{}", random_suffix(5));
            object::metadata_mut(&mut obj).insert("name".into(), json!(name));
        }
        if !ns.is_empty() {
            match inner
                .objects
                .get(&namespaces())
                .and_then(|b| b.get(&(String::new(), ns.clone())))
            {
                None => return Err(Error::not_found(&namespaces(), &ns)),
                Some(n) if object::is_deleting(n) => {
                    return Err(Error::Forbidden(format!(
                        "{gr} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                    )))
                }
                Some(_) => {}
            }
        }
        let key = (ns, name.clone());
        if let Some(existing) = inner.objects.get(gr).and_then(|b| b.get(&key)) {
            // staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go Create:
            // "object is being deleted: …" when the existing one has a deletionTimestamp.
            let deleting = object::is_deleting(existing);
            return Err(Error::AlreadyExists { gr: gr.clone(), name, deleting });
        }
        if !commit {
            let meta = object::metadata_mut(&mut obj);
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
            if tracks_generation(gr) {
                meta.insert("generation".into(), json!(1));
            }
            return Ok(obj);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = object::metadata_mut(&mut obj);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
        if tracks_generation(gr) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        inner.objects.entry(gr.clone()).or_default().insert(key, obj.clone());
        inner.record(ChangeType::Added, gr, obj.clone(), None, rv, &self.tx);
        Ok(obj)
    }

    /// Replaces an object. A `resourceVersion` in `obj` must match (optimistic concurrency).
    /// Identity fields are kept; `generation` moves when anything outside metadata and status
    /// changes. An unchanged object is not rewritten. Clearing the last finalizer of an object
    /// being deleted removes it.
    pub fn update(&self, gr: &GroupResource, obj: Value) -> Result<Value> {
        self.update_opt(gr, obj, true)
    }

    /// Update; without `commit` only checks and returns what would be stored (dry run).
    pub fn update_opt(&self, gr: &GroupResource, mut obj: Value, commit: bool) -> Result<Value> {
        let mut inner = self.lock();
        let ns = object::namespace(&obj).to_string();
        let name = object::name(&obj).to_string();
        let key = (ns.clone(), name.clone());
        let Some(old) = inner.objects.get(gr).and_then(|b| b.get(&key)).cloned() else {
            return Err(Error::not_found(gr, &name));
        };
        if let Some(rv) = object::resource_version(&obj) {
            if Some(rv) != object::resource_version(&old) {
                return Err(Error::Conflict {
                    gr: gr.clone(),
                    name,
                    message: "the object has been modified; please apply your changes to the latest version and try again".into(),
                });
            }
        }
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let mut generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
        if body_without(&old) != body_without(&obj) {
            generation += 1;
        }
        {
            let meta = object::metadata_mut(&mut obj);
            for k in ["uid", "creationTimestamp", "deletionTimestamp", "namespace"] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            if tracks_generation(gr) {
                meta.insert("generation".into(), json!(generation));
            } else {
                meta.remove("generation");
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta.get("resourceVersion").cloned().unwrap_or(Value::Null),
            );
        }
        if obj == old || !commit {
            return Ok(obj);
        }
        // A deleted pod whose last finalizer goes while its containers still stop stays until
        // they have (the kubelet's final status update removes it, [`Store::reap`] here).
        if object::is_deleting(&obj)
            && object::finalizers(&obj).is_empty()
            && gr != &namespaces()
            && !(gr == &pods() && inner.stopping.contains_key(&key))
        {
            return Ok(inner.remove(gr, &key, obj, &self.tx));
        }
        inner.rv += 1;
        let rv = inner.rv;
        object::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        if let Some(b) = inner.objects.get_mut(gr) {
            b.insert(key, obj.clone());
        }
        inner.record(ChangeType::Modified, gr, obj.clone(), Some(old), rv, &self.tx);
        if gr == &namespaces() && object::is_deleting(&obj) {
            inner.finish_namespace(&name, &self.tx);
        }
        Ok(obj)
    }

    /// Deletes an object with the grace period its kind gives it (see [`Store::delete_graceful`]).
    pub fn delete(&self, gr: &GroupResource, ns: &str, name: &str) -> Result<Deletion> {
        self.delete_graceful(gr, ns, name, None)
    }

    /// Deletes an object: at once, or by setting `deletionTimestamp` while finalizers remain.
    ///
    /// - A pod running on a node is deleted gracefully: it keeps existing with
    ///   `deletionTimestamp` (now + grace) and `deletionGracePeriodSeconds` until its containers
    ///   have stopped, then the kubelet removes it. The grace period is the request's
    ///   `gracePeriodSeconds`, else the pod's `terminationGracePeriodSeconds`, else 30; an
    ///   unscheduled or finished pod, or a grace of 0, goes at once; a second delete may only
    ///   shorten it (kubernetes v1.35 pkg/registry/core/pod/strategy.go CheckGracefulDelete,
    ///   staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go BeforeDelete).
    /// - A namespace goes `Terminating` and stays so while the namespace controller deletes its
    ///   content (pods with their grace period); it disappears once empty and its `kubernetes`
    ///   finalizer is removed. Deleting it again meanwhile is a `409 Conflict` (kubernetes v1.35
    ///   pkg/registry/core/namespace/storage/storage.go Delete; pkg/controller/namespace).
    pub fn delete_graceful(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Deletion> {
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let Some(obj) = inner.objects.get(gr).and_then(|b| b.get(&key)).cloned() else {
            return Err(Error::not_found(gr, name));
        };
        if gr == &namespaces() {
            if object::is_deleting(&obj) {
                if !spec_finalizers(&obj).is_empty() {
                    return Err(Error::Conflict {
                        gr: gr.clone(),
                        name: name.to_string(),
                        message: "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.".into(),
                    });
                }
                return Ok(Deletion::Pending(obj));
            }
            let obj = inner.mark_deleting(gr, &key, obj, &self.tx);
            inner.terminating.insert(name.to_string());
            return Ok(Deletion::Pending(obj));
        }
        Ok(inner.delete_one(gr, &key, grace, &self.tx))
    }

    /// What the kubelets and the namespace controller do, as time passes: pods whose
    /// containers have stopped are removed, and terminating namespaces are emptied and, once
    /// empty, finalized. Called periodically (see [`crate::run_lifecycle`]).
    pub fn reap(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let stopped: Vec<(String, String)> =
            inner.stopping.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in stopped {
            inner.stopping.remove(&key);
            let pods = pods();
            let Some(pod) = inner.objects.get(&pods).and_then(|b| b.get(&key)).cloned() else {
                continue;
            };
            if object::finalizers(&pod).is_empty() {
                inner.remove(&pods, &key, pod, &self.tx);
            }
        }
        for ns in inner.terminating.clone() {
            let contents: Vec<(GroupResource, (String, String))> = inner
                .objects
                .iter()
                .flat_map(|(g, b)| {
                    b.keys()
                        .filter(|(n, _)| *n == ns)
                        .map(|k| (g.clone(), k.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            for (g, k) in contents {
                inner.delete_one(&g, &k, None, &self.tx);
            }
            inner.finish_namespace(&ns, &self.tx);
        }
    }

    /// Removes owner references to `uid` from every object (orphaning its dependents).
    pub fn orphan_dependents(&self, uid: &str) {
        let mut inner = self.lock();
        let dependents: Vec<(GroupResource, (String, String), Value)> = inner
            .objects
            .iter()
            .flat_map(|(g, b)| {
                b.iter()
                    .filter(|(_, o)| object::owner_uids(o).iter().any(|u| u == uid))
                    .map(|(k, o)| (g.clone(), k.clone(), o.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (gr, key, old) in dependents {
            let mut obj = old.clone();
            let meta = object::metadata_mut(&mut obj);
            if let Some(refs) = meta.get_mut("ownerReferences").and_then(Value::as_array_mut) {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                if refs.is_empty() {
                    meta.remove("ownerReferences");
                }
            }
            inner.rv += 1;
            let rv = inner.rv;
            object::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
            if let Some(b) = inner.objects.get_mut(&gr) {
                b.insert(key, obj.clone());
            }
            inner.record(ChangeType::Modified, &gr, obj, Some(old), rv, &self.tx);
        }
    }

    /// Forgets every object (a simulated restart that lost its state). Watches older than now
    /// get 410 Gone.
    pub fn wipe(&self) {
        let mut inner = self.lock();
        inner.objects.clear();
        inner.history.clear();
        inner.stopping.clear();
        inner.terminating.clear();
        inner.rv += 1;
        inner.floor = inner.rv;
    }

    /// Registers a watch on `gr` from `rv`. `None` (or 0) means "now, with the current objects as
    /// ADDED"; an explicit version older than the history gives `Gone`.
    pub fn watch(&self, gr: &GroupResource, rv: Option<u64>) -> Result<Subscription> {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let backlog = match rv.filter(|rv| *rv > 0) {
            None => inner
                .objects
                .get(gr)
                .map(|b| {
                    b.values()
                        .map(|o| {
                            Arc::new(Change {
                                kind: ChangeType::Added,
                                gr: gr.clone(),
                                object: o.clone(),
                                old: None,
                                rv: inner.rv,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(rv) if rv < inner.floor => {
                return Err(Error::Gone { requested: rv, oldest: inner.floor })
            }
            Some(rv) => {
                inner.history.iter().filter(|c| c.rv > rv && &c.gr == gr).cloned().collect()
            }
        };
        Ok(Subscription { backlog, live, rv: inner.rv })
    }
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        kind: ChangeType,
        gr: &GroupResource,
        object: Value,
        old: Option<Value>,
        rv: u64,
        tx: &broadcast::Sender<Arc<Change>>,
    ) {
        let change = Arc::new(Change { kind, gr: gr.clone(), object, old, rv });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = tx.send(change);
    }

    fn mark_deleting(
        &mut self,
        gr: &GroupResource,
        key: &(String, String),
        mut obj: Value,
        tx: &broadcast::Sender<Arc<Change>>,
    ) -> Value {
        if object::is_deleting(&obj) {
            return obj;
        }
        self.rv += 1;
        let rv = self.rv;
        {
            let meta = object::metadata_mut(&mut obj);
            meta.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        if gr == &namespaces() {
            if let Some(m) = obj.as_object_mut() {
                object::child_mut(m, "status").insert("phase".into(), json!("Terminating"));
            }
        }
        if let Some(b) = self.objects.get_mut(gr) {
            b.insert(key.clone(), obj.clone());
        }
        self.record(ChangeType::Modified, gr, obj.clone(), None, rv, tx);
        obj
    }

    fn delete_one(
        &mut self,
        gr: &GroupResource,
        key: &(String, String),
        grace: Option<i64>,
        tx: &broadcast::Sender<Arc<Change>>,
    ) -> Deletion {
        let Some(obj) = self.objects.get(gr).and_then(|b| b.get(key)).cloned() else {
            return Deletion::Removed(Value::Null);
        };
        if gr == &pods() {
            if let Some(pending) = self.stop_pod(key, &obj, grace, tx) {
                return pending;
            }
        }
        if !object::finalizers(&obj).is_empty() {
            return Deletion::Pending(self.mark_deleting(gr, key, obj, tx));
        }
        Deletion::Removed(self.remove(gr, key, obj, tx))
    }

    /// Removes an object, then collects its dependents (owner references) and, if it was the
    /// last thing in a terminating namespace, the namespace.
    fn remove(
        &mut self,
        gr: &GroupResource,
        key: &(String, String),
        mut obj: Value,
        tx: &broadcast::Sender<Arc<Change>>,
    ) -> Value {
        if let Some(b) = self.objects.get_mut(gr) {
            b.remove(key);
        }
        self.rv += 1;
        let rv = self.rv;
        object::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(ChangeType::Deleted, gr, obj.clone(), None, rv, tx);

        let uid = object::uid(&obj).to_string();
        let dependents: Vec<(GroupResource, (String, String))> = self
            .objects
            .iter()
            .flat_map(|(g, b)| {
                b.iter()
                    .filter(|(_, o)| object::owner_uids(o).contains(&uid))
                    .map(|(k, _)| (g.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (g, k) in dependents {
            self.delete_one(&g, &k, None, tx);
        }
        if !key.0.is_empty() {
            self.finish_namespace(&key.0, tx);
        }
        obj
    }

    /// Graceful deletion of a pod (see [`Store::delete_graceful`]): `None` if it goes at once.
    fn stop_pod(
        &mut self,
        key: &(String, String),
        pod: &Value,
        grace: Option<i64>,
        tx: &broadcast::Sender<Arc<Change>>,
    ) -> Option<Deletion> {
        let scheduled =
            pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let finished = matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let grace = grace
            .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
            .max(0);
        if !scheduled || finished || grace == 0 {
            self.stopping.remove(key);
            return None;
        }
        if object::is_deleting(pod) {
            // Already stopping: a delete may only shorten the grace period.
            let current =
                pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
            if current.is_some_and(|c| c <= grace) {
                return Some(Deletion::Pending(pod.clone()));
            }
        }
        let mut obj = pod.clone();
        self.rv += 1;
        let rv = self.rv;
        let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
        {
            let meta = object::metadata_mut(&mut obj);
            meta.insert(
                "deletionTimestamp".into(),
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        if let Some(b) = self.objects.get_mut(&pods()) {
            b.insert(key.clone(), obj.clone());
        }
        self.record(ChangeType::Modified, &pods(), obj.clone(), Some(pod.clone()), rv, tx);
        let stop = self.pod_stop_delay.min(Duration::from_secs(grace as u64));
        let due = Instant::now() + stop;
        let entry = self.stopping.entry(key.clone()).or_insert(due);
        *entry = (*entry).min(due);
        Some(Deletion::Pending(obj))
    }

    /// Finalizes a terminating namespace once it is empty: its `kubernetes` finalizer goes,
    /// then (with no other finalizers) the namespace.
    fn finish_namespace(&mut self, ns: &str, tx: &broadcast::Sender<Arc<Change>>) {
        let nkey = (String::new(), ns.to_string());
        let Some(nsobj) = self.objects.get(&namespaces()).and_then(|b| b.get(&nkey)).cloned()
        else {
            self.terminating.remove(ns);
            return;
        };
        if !object::is_deleting(&nsobj) {
            return;
        }
        let empty = self.objects.iter().all(|(_, b)| !b.keys().any(|(n, _)| n == ns));
        if !empty {
            return;
        }
        self.terminating.remove(ns);
        let mut nsobj = nsobj;
        if !spec_finalizers(&nsobj).is_empty() {
            let old = nsobj.clone();
            if let Some(spec) = nsobj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
            self.rv += 1;
            let rv = self.rv;
            object::metadata_mut(&mut nsobj)
                .insert("resourceVersion".into(), json!(rv.to_string()));
            if let Some(b) = self.objects.get_mut(&namespaces()) {
                b.insert(nkey.clone(), nsobj.clone());
            }
            self.record(ChangeType::Modified, &namespaces(), nsobj.clone(), Some(old), rv, tx);
        }
        if object::finalizers(&nsobj).is_empty() {
            self.remove(&namespaces(), &nkey, nsobj, tx);
        }
    }
}

fn pods() -> GroupResource {
    GroupResource::new("", "pods")
}

/// A namespace's `spec.finalizers` (the namespace controller's `kubernetes`).
fn spec_finalizers(ns: &Value) -> Vec<&str> {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether the kind has a `metadata.generation` at all. Only kinds whose registry strategy sets
/// it do (their `PrepareForCreate`: workloads, ingresses, network policies, pods since 1.34's
/// PodObservedGenerationTracking, CRDs and every custom resource); Namespaces, Services,
/// Secrets, ConfigMaps, Nodes, Events, quotas and the like never carry one (kubernetes v1.35
/// pkg/registry/*/strategy.go).
fn tracks_generation(gr: &GroupResource) -> bool {
    match gr.group.as_str() {
        "" => gr.resource == "pods",
        "rbac.authorization.k8s.io"
        | "coordination.k8s.io"
        | "node.k8s.io"
        | "storage.k8s.io"
        | "events.k8s.io"
        | "metrics.k8s.io" => false,
        _ => true,
    }
}

/// Everything but metadata and status: what `generation` tracks.
fn body_without(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Random lowercase alphanumerics, as `generateName` and controllers use.
pub fn random_suffix(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}
