//! ResourceQuota accounting and admission as the API server does it, as pure functions over
//! `serde_json::Value`: exact [`Quantity`] arithmetic and printing, what an object charges
//! ([`usage`]), the sum over a namespace ([`namespace_usage`], [`quota_usage`]), the quota
//! admission check with the plugin's exact messages ([`admit`], [`admit_all`]) and `status.used`
//! ([`status_used`]).
//!
//! Sources, read in kubernetes/kubernetes (commit given per file):
//! - `staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go` @009f4971, `amount.go`
//!   @0411cc70, `suffix.go` @7125a5f0 (another stored `suffix.go`, @1402b859, re-cases the first
//!   suffix letter so `1gi` parses; it is not gofmt-formatted and not what upstream ships, so `1gi`
//!   stays invalid here as in upstream `quantity_test.go`)
//! - `pkg/quota/v1/evaluator/core/pods.go` @d7ce957d, `services.go` @04791b49,
//!   `persistent_volume_claims.go` @008ef699, `registry.go` @1163218c
//! - `staging/src/k8s.io/component-helpers/resource/helpers.go` @c4b5de20 (PodRequests/PodLimits)
//! - `staging/src/k8s.io/apiserver/pkg/quota/v1/generic/evaluator.go` @04791b49,
//!   `staging/src/k8s.io/apiserver/pkg/quota/v1/resources.go` @36e95961
//! - `staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go` @b1ce15c5
//! - `pkg/quota/v1/install/registry.go` @761db196 (ignored resources)
//!
//! Feature gates are taken at their current defaults: PodLevelResources, InPlacePodVerticalScaling
//! (status resources count), VolumeAttributesClass and ServiceLBNodePortControl on; DRA's
//! ResourceClaim evaluator and `requests.deviceclass…` claims are not modelled.
//!
//! Not supported: the admission plugin's `LimitedResources` configuration (kube-apiserver has
//! none by default); `status unknown for quota` (usage is always computed here, never missing);
//! the quota controller's discovery of which `count/<resource>.<group>` exist (every `count/` key
//! is tracked). Arithmetic is exact up to 38 significant digits (Go's `inf.Dec` is unbounded).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// How a quantity prints, remembered from the suffix it was written with (quantity.go `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `12Mi`
    BinarySI,
    /// `12M`, `500m`, `4`
    DecimalSI,
}

/// A quantity in base units (cores / bytes / counts), exact: `mant × 10^exp`, at most nano
/// precision as `ParseQuantity` rounds. Like Go's `resource.Quantity` it remembers its input
/// string when that input was already canonical-looking (quantity.go caches `s` on the int64
/// fast path), so a copied value prints exactly as written and a computed one canonically.
/// Equality and ordering compare values only.
#[derive(Debug, Clone)]
pub struct Quantity {
    /// Mantissa without trailing zeros (or 0 with `exp` 0).
    mant: i128,
    exp: i32,
    format: Format,
    cached: Option<String>,
}

/// `maxInt64Factors` in quantity.go: digits that always fit an int64.
const MAX_INT64_FACTORS: i32 = 18;
const NANO: i32 = -9;

fn normalize(mut m: i128, mut e: i32) -> (i128, i32) {
    if m == 0 {
        return (0, 0);
    }
    while m % 10 == 0 {
        m /= 10;
        e = e.saturating_add(1);
    }
    (m, e)
}

/// `m × 10^k`, `None` on overflow.
fn shift(m: i128, k: i64) -> Option<i128> {
    if m == 0 {
        return Some(0);
    }
    m.checked_mul(10i128.checked_pow(u32::try_from(k).ok()?)?)
}

fn digits(m: i128) -> i64 {
    m.unsigned_abs().checked_ilog10().map_or(0, |d| i64::from(d) + 1)
}

fn cmp_values(a: (i128, i32), b: (i128, i32)) -> Ordering {
    let (sa, sb) = (a.0.signum(), b.0.signum());
    if sa != sb || sa == 0 {
        return sa.cmp(&sb);
    }
    let magnitude = |(m, e): (i128, i32)| digits(m) + i64::from(e);
    let by_magnitude = magnitude(a).cmp(&magnitude(b));
    if by_magnitude != Ordering::Equal {
        return if sa > 0 { by_magnitude } else { by_magnitude.reverse() };
    }
    let e = a.1.min(b.1);
    let flip = |o: Ordering| if sa < 0 { o.reverse() } else { o };
    match (shift(a.0, i64::from(a.1) - i64::from(e)), shift(b.0, i64::from(b.1) - i64::from(e))) {
        (Some(x), Some(y)) => x.cmp(&y),
        // Same order of magnitude: the one that overflows when aligned is the larger.
        (None, Some(_)) => flip(Ordering::Greater),
        (Some(_), None) => flip(Ordering::Less),
        (None, None) => Ordering::Equal,
    }
}

/// Exact `a + b`; beyond 38 significant digits the negligible operand is dropped.
fn add_values(a: (i128, i32), b: (i128, i32)) -> (i128, i32) {
    if b.0 == 0 {
        return a;
    }
    if a.0 == 0 {
        return b;
    }
    let e = a.1.min(b.1);
    let sum = shift(a.0, i64::from(a.1) - i64::from(e))
        .zip(shift(b.0, i64::from(b.1) - i64::from(e)))
        .and_then(|(x, y)| x.checked_add(y));
    match sum {
        Some(s) => normalize(s, e),
        None if cmp_values((a.0.saturating_abs(), a.1), (b.0.saturating_abs(), b.1))
            == Ordering::Less =>
        {
            b
        }
        None => a,
    }
}

impl Quantity {
    /// `resource.NewQuantity(n, DecimalSI)`: what evaluators charge for counts.
    pub fn int(n: i64) -> Self {
        let (mant, exp) = normalize(i128::from(n), 0);
        Self { mant, exp, format: Format::DecimalSI, cached: None }
    }

    /// Zero in DecimalSI, what quota usage sums start from (generic `CalculateUsageStats`).
    pub fn zero() -> Self {
        Self::int(0)
    }

    /// `resource.ParseQuantity` (quantity.go @009f4971, suffix.go @7125a5f0): the same grammar, the same rounding (up to nano,
    /// away from zero), the same format rules (BinarySI capped at 2^63-1, below one it becomes
    /// DecimalSI) and the same remembered-string rule. `None` where Go returns an error, and also
    /// beyond 38 significant digits.
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            return None;
        }
        if text == "0" {
            return Some(Self { cached: Some(text.into()), ..Self::zero() });
        }
        let (positive, value, num, denom, suffix) = scan(text)?;
        let (base, exponent, format) = interpret(suffix)?;
        let len = |s: &str| i32::try_from(s.len()).unwrap_or(i32::MAX);
        let (mut scale, precision, multiplier) = match format {
            Format::DecimalExponent | Format::DecimalSI => {
                (exponent, MAX_INT64_FACTORS.saturating_sub(len(num).saturating_add(len(denom))), 1)
            }
            Format::BinarySI if exponent >= 0 && denom.is_empty() => {
                // Go: 15 - len(num) - int32(float32(exponent)*3/10) - 1
                let p = 15 - len(num) - exponent * 3 / 10 - 1;
                (0, p, 1i64.checked_shl(exponent.unsigned_abs()).unwrap_or(0))
            }
            Format::BinarySI => (0, -1, 1),
        };
        if precision >= 0 {
            scale = scale.wrapping_sub(len(denom));
            if scale >= NANO {
                let shifted = format!("{num}{denom}");
                let v: i64 = shifted.parse().ok()?;
                if let Some(mut result) = v.checked_mul(multiplier) {
                    if !positive {
                        result = -result;
                    }
                    let canonical = match format {
                        Format::BinarySI => exponent % 10 == 0 && v & 0x07 != 0,
                        _ => {
                            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
                        }
                    };
                    let (mant, exp) = normalize(i128::from(result), scale);
                    return Some(Self {
                        mant,
                        exp,
                        format,
                        cached: canonical.then(|| text.into()),
                    });
                }
            }
        }
        // The inf.Dec path.
        let (mut mant, mut exp) = parse_decimal(value)?;
        if base == 10 {
            exp = exp.checked_add(exponent)?;
        } else {
            mant = mant.checked_mul(1i128.checked_shl(exponent.unsigned_abs())?)?;
        }
        let negative = mant < 0;
        mant = mant.checked_abs()?;
        if mant != 0 && exp < NANO {
            let k = i64::from(NANO) - i64::from(exp);
            mant = match shift(1, k) {
                Some(d) => mant / d + i128::from(mant % d != 0),
                None => 1,
            };
            exp = NANO;
        }
        let (mut mant, mut exp) = normalize(mant, exp);
        let mut format = format;
        if format == Format::BinarySI {
            if cmp_values((mant, exp), (i128::from(i64::MAX), 0)) == Ordering::Greater {
                (mant, exp) = (i128::from(i64::MAX), 0);
            }
            if mant != 0 && cmp_values((mant, exp), (1, 0)) == Ordering::Less {
                format = Format::DecimalSI;
            }
        }
        if negative {
            mant = -mant;
        }
        Some(Self { mant, exp, format, cached: None })
    }

    /// A quantity as JSON carries it: a string, or a bare number (Go's `UnmarshalJSON` parses
    /// the raw bytes of either).
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.mant == 0
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        self.mant.signum() as i32
    }

    /// An approximation, for display and metrics only.
    pub fn as_f64(&self) -> f64 {
        self.mant as f64 * 10f64.powi(self.exp)
    }

    /// `Quantity.Add`: a zero receiver takes the other's format; the remembered string is gone.
    pub fn add(&mut self, y: &Quantity) {
        if self.is_zero() {
            self.format = y.format;
        }
        self.cached = None;
        (self.mant, self.exp) = add_values((self.mant, self.exp), (y.mant, y.exp));
    }

    /// `Quantity.Sub`, with the same format rule as [`Quantity::add`].
    pub fn sub(&mut self, y: &Quantity) {
        if self.is_zero() {
            self.format = y.format;
        }
        self.cached = None;
        (self.mant, self.exp) = add_values((self.mant, self.exp), (y.mant.saturating_neg(), y.exp));
    }

    /// `Quantity.RoundUp(0)`: whole units, away from zero (a whole value keeps its string).
    fn round_up_to_units(&mut self) {
        if self.exp < 0 {
            let d = shift(1, -i64::from(self.exp)).unwrap_or(i128::MAX);
            let m = self.mant / d + self.mant.signum() * i128::from(self.mant % d != 0);
            (self.mant, self.exp) = normalize(m, 0);
            self.cached = None;
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_values((self.mant, self.exp), (other.mant, other.exp))
    }
}

/// `Quantity.String` / `CanonicalizeBytes` (quantity.go @009f4971, amount.go @0411cc70): the
/// remembered input if any; else the largest suffix that loses nothing and leaves no fraction.
/// BinarySI between -1024 and 1024 or with a fraction prints as DecimalSI; decimal exponents are
/// floored to a multiple of 3. A suffix Go has no entry for (DecimalSI beyond `E`, BinarySI
/// beyond `Ei`) prints as nothing, as in Go.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.cached {
            return f.write_str(s);
        }
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let small =
                cmp_values((self.mant.saturating_abs(), self.exp), (1024, 0)) == Ordering::Less;
            let whole =
                if small || self.exp < 0 { None } else { shift(self.mant, self.exp.into()) };
            match whole {
                Some(mut v) => {
                    let mut times = 0;
                    while v.unsigned_abs() >= 1024 && v % 1024 == 0 {
                        v /= 1024;
                        times += 1;
                    }
                    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].get(times).unwrap_or(&"");
                    return write!(f, "{v}{suffix}");
                }
                None => format = Format::DecimalSI,
            }
        }
        let e3 = self.exp.div_euclid(3) * 3;
        let zeros = "0".repeat((self.exp - e3) as usize);
        let suffix = match format {
            Format::DecimalExponent if e3 == 0 => String::new(),
            Format::DecimalExponent => format!("e{e3}"),
            _ => match e3 {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                18 => "E",
                _ => "",
            }
            .into(),
        };
        write!(f, "{}{zeros}{suffix}", self.mant)
    }
}

/// `parseQuantityString` (quantity.go), byte for byte: (positive, value, num, denom, suffix).
fn scan(s: &str) -> Option<(bool, &str, &str, &str, &str)> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some((positive, "0", "0", "", ""));
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos >= end {
        return Some((positive, s, &s[start..], "", ""));
    }
    let num = if pos == start { "0" } else { &s[start..pos] };
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let d = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos >= end {
            return Some((positive, s, num, &s[d..], ""));
        }
        denom = &s[d..pos];
    }
    let value = &s[..pos];
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    (pos >= end).then(|| (positive, value, num, denom, &s[suffix_start..]))
}

/// `suffixer.interpret` (suffix.go @7125a5f0): (base, exponent, format).
fn interpret(suffix: &str) -> Option<(i32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && s.starts_with(['e', 'E']) => {
            // Go: strconv.ParseInt(s[1:], 10, 64) then int32(parsed), which wraps.
            let parsed: i64 = s[1..].parse().ok()?;
            Some((10, parsed as i32, Format::DecimalExponent))
        }
        _ => None,
    }
}

/// `inf.Dec.SetString` of the number part (`-1.5`, `.5`, `1.`): (mantissa, exponent).
fn parse_decimal(v: &str) -> Option<(i128, i32)> {
    let (negative, v) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let all = format!("{int}{frac}");
    let trimmed = all.trim_start_matches('0');
    let kept = trimmed.trim_end_matches('0');
    let exp = i32::try_from(trimmed.len() - kept.len()).ok()? - i32::try_from(frac.len()).ok()?;
    let mant: i128 = if kept.is_empty() { 0 } else { kept.parse().ok()? };
    Some(normalize(if negative { -mant } else { mant }, exp))
}

/// Resource name → quantity, as quota works with it (`corev1.ResourceList`), sorted by name.
pub type Usage = BTreeMap<String, Quantity>;

/// The compatibility helper `policy::parse_quantity` always was: base units as `f64`.
pub fn parse_quantity(q: &str) -> Option<f64> {
    Quantity::parse(q).map(|q| q.as_f64())
}

/// A quantity string as the API server stores it (unparseable text is returned unchanged).
pub fn canonical(q: &Value) -> Value {
    Quantity::from_value(q).map_or_else(|| q.clone(), |q| Value::String(q.to_string()))
}

fn list_at(v: &Value, pointer: &str) -> Usage {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter().filter_map(|(k, v)| Some((k.clone(), Quantity::from_value(v)?))).collect()
        })
        .unwrap_or_default()
}

/// `addResourceList` (helpers.go) / `quota.Add` into `to`: a new key is copied (keeping its
/// string), an existing one summed.
fn add_list(to: &mut Usage, from: &Usage) {
    for (k, q) in from {
        match to.get_mut(k) {
            Some(v) => v.add(q),
            None => {
                to.insert(k.clone(), q.clone());
            }
        }
    }
}

/// `maxResourceList` (helpers.go).
fn max_list(to: &mut Usage, from: &Usage) {
    for (k, q) in from {
        if to.get(k).is_none_or(|v| q > v) {
            to.insert(k.clone(), q.clone());
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn array_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

// ---------------------------------------------------------------------------------------------
// Evaluators (pkg/quota/v1/evaluator/core, generic object count)

/// `ignoredResources` (pkg/quota/v1/install/registry.go): never quota'd, never counted.
const IGNORED: [(&str, &str); 10] = [
    ("", "bindings"),
    ("", "componentstatuses"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("", "events"),
    ("events.k8s.io", "events"),
];

/// `legacyObjectCountAliases` (core/registry.go): these also count under their bare name.
const LEGACY_ALIASES: [&str; 4] =
    ["configmaps", "resourcequotas", "replicationcontrollers", "secrets"];

/// `podResources` (pods.go).
const POD_RESOURCES: [&str; 11] = [
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// `validationSet` (pods.go): quota'd this, every container must state it ("a mistake").
const VALIDATION_SET: [&str; 6] =
    ["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

const SERVICE_RESOURCES: [&str; 4] =
    ["count/services", "services", "services.nodeports", "services.loadbalancers"];

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Which evaluator handles a resource (core/registry.go `NewEvaluators`, plus the generic
/// object-count evaluator the quota plugin creates for anything else).
#[derive(Debug)]
enum Evaluator {
    Pods,
    Services,
    Pvcs,
    /// The names an object counts under: `count/<resource>[.<group>]` and a legacy alias.
    Count(Vec<String>),
    Ignored,
}

impl Evaluator {
    /// `plural` may be qualified (`deployments.apps`); otherwise the group comes from the
    /// object's `apiVersion`.
    fn of(plural: &str, obj: &Value) -> Self {
        let (resource, group) = match plural.split_once('.') {
            Some((r, g)) => (r, g),
            None => (plural, str_at(obj, "/apiVersion").split_once('/').map_or("", |(g, _)| g)),
        };
        if IGNORED.contains(&(group, resource)) {
            return Self::Ignored;
        }
        match (group, resource) {
            ("", "pods") => Self::Pods,
            ("", "services") => Self::Services,
            ("", "persistentvolumeclaims") => Self::Pvcs,
            _ => {
                let mut names = vec![count_name(group, resource)];
                if group.is_empty() && LEGACY_ALIASES.contains(&resource) {
                    names.push(resource.to_string());
                }
                Self::Count(names)
            }
        }
    }

    /// `MatchingResources`: the quota's resource names this evaluator accounts for.
    fn matching<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
        names
            .into_iter()
            .filter(|n| match self {
                Self::Pods => {
                    POD_RESOURCES.contains(n)
                        || n.starts_with("hugepages-")
                        || n.starts_with("requests.hugepages-")
                        || is_extended_for_quota(n)
                }
                Self::Services => SERVICE_RESOURCES.contains(n),
                Self::Pvcs => {
                    ["count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage"]
                        .contains(n)
                        || ["persistentvolumeclaims", "requests.storage"]
                            .iter()
                            .any(|r| n.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
                }
                Self::Count(own) => own.iter().any(|o| o == n),
                Self::Ignored => false,
            })
            .collect()
    }

    /// `Handles`: which operations can change usage. Pods: create, a change of the Terminating
    /// scope, and resizes (the `resize` subresource; told here by changed container resources,
    /// which a plain pod update may not change); services and PVCs: create and update; counted
    /// objects: create.
    fn handles(&self, new: &Value, old: Option<&Value>) -> bool {
        let Some(old) = old else { return !matches!(self, Self::Ignored) };
        match self {
            Self::Pods => {
                fn resources(p: &Value) -> [Vec<Option<&Value>>; 2] {
                    ["/spec/containers", "/spec/initContainers"]
                        .map(|c| array_at(p, c).iter().map(|c| c.get("resources")).collect())
                }
                is_terminating(old) != is_terminating(new) || resources(old) != resources(new)
            }
            Self::Services | Self::Pvcs => true,
            Self::Count(_) | Self::Ignored => false,
        }
    }

    /// `Usage`.
    fn usage(&self, obj: &Value, now: DateTime<Utc>) -> Usage {
        match self {
            Self::Pods => pod_usage(obj, now),
            Self::Services => service_usage(obj),
            Self::Pvcs => pvc_usage(obj),
            Self::Count(names) => names.iter().map(|n| (n.clone(), Quantity::int(1))).collect(),
            Self::Ignored => Usage::new(),
        }
    }

    /// One scope selector against an object: pods know all pod scopes, PVCs
    /// VolumeAttributesClass, everything else none (`generic.MatchesNoScopeFunc`).
    fn matches_scope(&self, selector: &Value, obj: &Value) -> bool {
        match self {
            Self::Pods => pod_matches_scope(selector, obj),
            Self::Pvcs => pvc_matches_scope(selector, obj),
            _ => false,
        }
    }

    /// `generic.Matches`: the quota names a resource of this evaluator and every scope matches.
    fn matches(&self, quota: &Value, obj: &Value) -> bool {
        !self.matching(hard(quota).keys().map(String::as_str)).is_empty()
            && scope_selectors(quota).iter().all(|s| self.matches_scope(s, obj))
    }
}

fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// `helper.IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `isExtendedResourceNameForQuota` (pods.go): `requests.<extended>` (incl. DRA device classes).
fn is_extended_for_quota(name: &str) -> bool {
    name.starts_with("requests.")
        && (!is_native(name) || name.starts_with("requests.deviceclass.resource.kubernetes.io/"))
}

/// `schedutil.IsDRAExtendedResourceName`: an extended resource a container may request.
fn is_dra_extended(name: &str) -> bool {
    (!is_native(name) && !name.starts_with("requests."))
        || name.starts_with("deviceclass.resource.kubernetes.io/")
}

fn hard(quota: &Value) -> Usage {
    list_at(quota, "/spec/hard")
}

/// `getScopeSelectorsFromQuota`: `spec.scopes` as `Exists` selectors, then `scopeSelector`.
fn scope_selectors(quota: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = array_at(quota, "/spec/scopes")
        .iter()
        .map(|s| serde_json::json!({"scopeName": s, "operator": "Exists"}))
        .collect();
    out.extend(array_at(quota, "/spec/scopeSelector/matchExpressions").iter().cloned());
    out
}

/// A scope selector as a label selector on `{<scopeName>: value}` (or no labels when `value`
/// is `None`), as `ScopedResourceSelectorRequirementsAsSelector` builds it.
fn selector_matches(selector: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> =
        array_at(selector, "/values").iter().filter_map(Value::as_str).collect();
    match str_at(selector, "/operator") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Pods

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64).is_some_and(|s| s >= 0)
}

/// `qos.GetPodQOS(pod) == BestEffort`: `status.qosClass` if set, else no cpu/memory request or
/// limit anywhere (pod-level resources, when present, decide alone).
fn is_best_effort(pod: &Value) -> bool {
    let qos = str_at(pod, "/status/qosClass");
    if !qos.is_empty() {
        return qos == "BestEffort";
    }
    let none = |r: &Value| {
        ["requests", "limits"].iter().all(|kind| {
            ["cpu", "memory"]
                .iter()
                .all(|res| list_at(r, &format!("/{kind}")).get(*res).is_none_or(Quantity::is_zero))
        })
    };
    if let Some(r) = pod.pointer("/spec/resources").filter(|r| !r.is_null()) {
        return none(r);
    }
    containers(pod).all(|c| c.get("resources").is_none_or(none))
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |t: &Value| {
        !array_at(t, "/namespaces").is_empty()
            || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|a| {
        let base = format!("/spec/affinity/{a}");
        array_at(pod, &format!("{base}/requiredDuringSchedulingIgnoredDuringExecution"))
            .iter()
            .any(cross)
            || array_at(pod, &format!("{base}/preferredDuringSchedulingIgnoredDuringExecution"))
                .iter()
                .any(|w| w.get("podAffinityTerm").is_some_and(cross))
    })
}

/// `podMatchesScopeFunc` (pods.go).
fn pod_matches_scope(selector: &Value, pod: &Value) -> bool {
    match str_at(selector, "/scopeName") {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let pc = str_at(pod, "/spec/priorityClassName");
            if str_at(selector, "/operator") == "Exists" {
                !pc.is_empty()
            } else {
                selector_matches(selector, Some(pc).filter(|p| !p.is_empty()))
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// `QuotaV1Pod` (pods.go): terminal pods, and pods whose deletion is past
/// `deletionTimestamp + deletionGracePeriodSeconds`, no longer hold compute quota.
fn pod_is_charged(pod: &Value, now: DateTime<Utc>) -> bool {
    if matches!(str_at(pod, "/status/phase"), "Failed" | "Succeeded") {
        return false;
    }
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let grace = pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
    match deleted.zip(grace) {
        Some((at, grace)) => now <= at.with_timezone(&Utc) + chrono::Duration::seconds(grace),
        None => true,
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    array_at(pod, "/spec/containers").iter().chain(array_at(pod, "/spec/initContainers"))
}

/// A container's requests after `SetDefaults_Pod` (a limit without a request is also the
/// request), so an object the caller has not defaulted is charged as the API server would.
fn container_requests(c: &Value) -> Usage {
    let mut r = list_at(c, "/resources/requests");
    for (k, q) in list_at(c, "/resources/limits") {
        r.entry(k).or_insert(q);
    }
    r
}

/// `IsSupportedPodLevelResource` (helpers.go).
fn pod_level_supported(name: &str) -> bool {
    name == "cpu" || name == "memory" || name.starts_with("hugepages-")
}

fn pod_level(pod: &Value, kind: &str) -> Usage {
    let mut l = list_at(pod, &format!("/spec/resources/{kind}"));
    l.retain(|k, _| pod_level_supported(k));
    l
}

/// `IsPodLevelResourcesSet` (helpers.go).
fn pod_level_set(pod: &Value) -> bool {
    !pod_level(pod, "requests").is_empty() || !pod_level(pod, "limits").is_empty()
}

/// `AggregateContainerRequests`/`AggregateContainerLimits` (helpers.go) with
/// `UseStatusResources`: app containers and sidecars (init containers with
/// `restartPolicy: Always`) add up, and each plain init container, with the sidecars started
/// before it, sets a floor. Status resources of resized containers count per
/// `determineContainerReqs`/`determineContainerLimits`.
fn aggregate(pod: &Value, requests: bool) -> Usage {
    let statuses: HashMap<&str, &Value> =
        ["/status/containerStatuses", "/status/initContainerStatuses"]
            .iter()
            .flat_map(|p| array_at(pod, p))
            .map(|s| (str_at(s, "/name"), s))
            .collect();
    let infeasible = array_at(pod, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "PodResizePending")
        .is_some_and(|c| str_at(c, "/reason") == "Infeasible");
    let spec =
        |c: &Value| if requests { container_requests(c) } else { list_at(c, "/resources/limits") };
    let effective = |c: &Value| {
        let Some(cs) = statuses
            .get(str_at(c, "/name"))
            .filter(|cs| cs.get("resources").is_some_and(Value::is_object))
        else {
            return spec(c);
        };
        let kind = if requests { "requests" } else { "limits" };
        let status = list_at(cs, &format!("/resources/{kind}"));
        let mut out = if infeasible {
            status
        } else {
            let mut s = spec(c);
            max_list(&mut s, &status);
            s
        };
        if requests {
            max_list(&mut out, &list_at(cs, "/allocatedResources"));
        }
        out
    };
    let mut total = Usage::new();
    for c in array_at(pod, "/spec/containers") {
        add_list(&mut total, &effective(c));
    }
    let (mut sidecars, mut init) = (Usage::new(), Usage::new());
    for c in array_at(pod, "/spec/initContainers") {
        let current = if str_at(c, "/restartPolicy") == "Always" {
            let r = effective(c);
            add_list(&mut total, &r);
            add_list(&mut sidecars, &r);
            sidecars.clone()
        } else {
            let mut tmp = spec(c);
            add_list(&mut tmp, &sidecars);
            tmp
        };
        max_list(&mut init, &current);
    }
    max_list(&mut total, &init);
    total
}

/// `PodRequests` (helpers.go): containers, replaced per resource by pod-level requests, plus
/// overhead.
fn pod_requests(pod: &Value) -> Usage {
    let mut r = aggregate(pod, true);
    r.extend(pod_level(pod, "requests"));
    add_list(&mut r, &list_at(pod, "/spec/overhead"));
    r
}

/// `PodLimits` (helpers.go): containers, replaced per resource by pod-level limits, plus
/// overhead on non-zero limits.
fn pod_limits(pod: &Value) -> Usage {
    let mut l = aggregate(pod, false);
    if pod_level_set(pod) {
        l.extend(pod_level(pod, "limits"));
    }
    for (k, q) in list_at(pod, "/spec/overhead") {
        if let Some(v) = l.get_mut(&k).filter(|v| !v.is_zero()) {
            v.add(&q);
        }
    }
    l
}

/// `podComputeUsageHelper` (pods.go).
fn compute_usage(requests: &Usage, limits: &Usage) -> Usage {
    let mut u = Usage::new();
    u.extend(Quantity::parse("1").map(|one| ("pods".to_string(), one)));
    for res in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(res) {
            u.insert(res.into(), q.clone());
            u.insert(format!("requests.{res}"), q.clone());
        }
        if let Some(q) = limits.get(res) {
            u.insert(format!("limits.{res}"), q.clone());
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            u.insert(name.clone(), q.clone());
            u.insert(format!("requests.{name}"), q.clone());
        }
        if is_dra_extended(name) {
            u.insert(format!("requests.{name}"), q.clone());
        }
    }
    u
}

/// `PodUsageFunc` (pods.go): `count/pods` always; compute resources and `pods` while charged.
fn pod_usage(pod: &Value, now: DateTime<Utc>) -> Usage {
    let mut u = Usage::from([("count/pods".to_string(), Quantity::int(1))]);
    if pod_is_charged(pod, now) {
        for (k, q) in compute_usage(&pod_requests(pod), &pod_limits(pod)) {
            u.entry(k).or_insert(q);
        }
    }
    u
}

/// `podEvaluator.Constraints` (pods.go): when a quota limits cpu/memory, every container (app
/// and init) must state them, unless the pod sets pod-level resources (PodLevelResources).
fn pod_constraints(required: &BTreeSet<&str>, pod: &Value) -> Result<(), String> {
    if pod_level_set(pod) {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in containers(pod) {
        let has = compute_usage(&container_requests(c), &list_at(c, "/resources/limits"));
        for r in required.iter().filter(|r| VALIDATION_SET.contains(r) && !has.contains_key(**r)) {
            missing.entry(r).or_default().insert(str_at(c, "/name"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!("{r} for: {}", names.iter().copied().collect::<Vec<_>>().join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

// ---------------------------------------------------------------------------------------------
// Services and PVCs

/// `serviceEvaluator.Usage` (services.go): NodePort and LoadBalancer services hold a node port
/// per port (LoadBalancers with `allocateLoadBalancerNodePorts: false` only the explicit ones).
fn service_usage(svc: &Value) -> Usage {
    let ports = array_at(svc, "/spec/ports");
    let count = |n: usize| Quantity::int(i64::try_from(n).unwrap_or(i64::MAX));
    let (node_ports, lbs) = match str_at(svc, "/spec/type") {
        "NodePort" => (count(ports.len()), 0),
        "LoadBalancer" => {
            let explicit_only =
                svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool)
                    == Some(false);
            let n = if explicit_only {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            (count(n), 1)
        }
        _ => (Quantity::zero(), 0),
    };
    Usage::from([
        ("count/services".into(), Quantity::int(1)),
        ("services".into(), Quantity::int(1)),
        ("services.loadbalancers".into(), Quantity::int(lbs)),
        ("services.nodeports".into(), node_ports),
    ])
}

/// `storagehelpers.GetPersistentVolumeClaimClass`: the beta annotation wins over the field.
fn pvc_class(pvc: &Value) -> &str {
    pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(pvc, "/spec/storageClassName"))
}

/// `pvcEvaluator.Usage` (persistent_volume_claims.go): the claim, its storage request rounded up
/// to whole bytes (or the larger `status.allocatedResources`), both also per storage class.
fn pvc_usage(pvc: &Value) -> Usage {
    let class = pvc_class(pvc);
    let mut u = Usage::from([
        ("persistentvolumeclaims".into(), Quantity::int(1)),
        ("count/persistentvolumeclaims".into(), Quantity::int(1)),
    ]);
    if !class.is_empty() {
        u.insert(format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"), Quantity::int(1));
    }
    let rounded = |mut q: Quantity| {
        q.round_up_to_units();
        q
    };
    let requested = list_at(pvc, "/spec/resources/requests").remove("storage").map(rounded);
    let allocated = list_at(pvc, "/status/allocatedResources").remove("storage");
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) if a > r => Some(rounded(a)),
        (r, _) => r,
    };
    if let Some(s) = storage {
        if !class.is_empty() {
            u.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), s.clone());
        }
        u.insert("requests.storage".into(), s);
    }
    u
}

/// `pvcMatchesScopeFunc`: the VolumeAttributesClass scope over the classes a claim names.
fn pvc_matches_scope(selector: &Value, pvc: &Value) -> bool {
    if str_at(selector, "/scopeName") != "VolumeAttributesClass" {
        return false;
    }
    let names: BTreeSet<&str> = [
        "/spec/volumeAttributesClassName",
        "/status/currentVolumeAttributesClassName",
        "/status/modifyVolumeStatus/targetVolumeAttributesClassName",
    ]
    .iter()
    .map(|p| str_at(pvc, p))
    .filter(|n| !n.is_empty())
    .collect();
    if str_at(selector, "/operator") == "Exists" {
        return !names.is_empty();
    }
    if names.is_empty() {
        return selector_matches(selector, None);
    }
    names.iter().any(|n| selector_matches(selector, Some(n)))
}

// ---------------------------------------------------------------------------------------------
// Public API

/// What one object charges against a quota, as its evaluator's `Usage` reports it (pods.go
/// @d7ce957d with helpers.go @c4b5de20, services.go @04791b49, persistent_volume_claims.go
/// @008ef699, generic/evaluator.go @04791b49). `plural` is the resource (`pods`,
/// `persistentvolumeclaims`, `services`, `secrets`…), qualified with its group for non-core
/// resources (`deployments.apps`) unless the object's `apiVersion` says it; resources without a
/// dedicated evaluator count as `count/<plural>` (plus the legacy bare name for configmaps,
/// secrets, resourcequotas and replicationcontrollers); ignored ones (events…) charge nothing.
pub fn usage(plural: &str, obj: &Value) -> Usage {
    usage_at(plural, obj, Utc::now())
}

/// [`usage`] at a given time (a deleting pod stops holding compute quota once `now` is past
/// `deletionTimestamp + deletionGracePeriodSeconds`).
pub fn usage_at(plural: &str, obj: &Value, now: DateTime<Utc>) -> Usage {
    Evaluator::of(plural, obj).usage(obj, now)
}

/// Sum of [`usage`] over objects of a namespace, per plural as in [`usage`]. Each resource sums
/// from a DecimalSI zero in list order, as the quota controller does (generic
/// `CalculateUsageStats`), so a sum prints in the format of its first non-zero summand. What
/// counts: `count/pods` every stored pod; `pods` and compute resources only pods that are not
/// Succeeded/Failed and not deleting past their grace period (`QuotaV1Pod`).
pub fn namespace_usage(objects: &[(&str, &[Value])]) -> Usage {
    sum_usage(objects, Utc::now(), |_, _| true)
}

/// [`namespace_usage`] restricted to the objects matching the quota's `spec.scopes` and
/// `spec.scopeSelector`, which is what a scoped quota's `used` is (the controller's
/// `CalculateUsage`); equal to [`namespace_usage`] for a quota without scopes.
pub fn quota_usage(quota: &Value, objects: &[(&str, &[Value])]) -> Usage {
    let selectors = scope_selectors(quota);
    sum_usage(objects, Utc::now(), |plural, obj| {
        let ev = Evaluator::of(plural, obj);
        selectors.iter().all(|s| ev.matches_scope(s, obj))
    })
}

fn sum_usage(
    objects: &[(&str, &[Value])],
    now: DateTime<Utc>,
    keep: impl Fn(&str, &Value) -> bool,
) -> Usage {
    let mut total = Usage::new();
    for (plural, items) in objects {
        for obj in items.iter().filter(|o| keep(plural, o)) {
            for (k, q) in usage_at(plural, obj, now) {
                total.entry(k).or_insert_with(Quantity::zero).add(&q);
            }
        }
    }
    total
}

/// Whether any evaluator accounts for a quota resource name (the controller's
/// `matchedResources`); others get no `status.used` entry.
fn tracked(name: &str) -> bool {
    let probe = Value::Null;
    ["pods", "services", "persistentvolumeclaims"]
        .into_iter()
        .chain(LEGACY_ALIASES)
        .any(|p| !Evaluator::of(p, &probe).matching([name]).is_empty())
        || name.strip_prefix("count/").is_some_and(|r| {
            let (resource, group) = r.split_once('.').unwrap_or((r, ""));
            !IGNORED.contains(&(group, resource))
        })
}

/// The `(group, resource)` lists a quota's usage needs, for the caller to list and pass to
/// [`quota_usage`] as `<resource>[.<group>]`.
pub fn counted_resources(hard: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for name in hard.as_object().into_iter().flat_map(Map::keys) {
        for p in ["pods", "services", "persistentvolumeclaims"].into_iter().chain(LEGACY_ALIASES) {
            if !Evaluator::of(p, &Value::Null).matching([name.as_str()]).is_empty() {
                out.insert((String::new(), p.to_string()));
            }
        }
        if let Some(r) = name.strip_prefix("count/") {
            let (resource, group) = r.split_once('.').unwrap_or((r, ""));
            if !IGNORED.contains(&(group, resource)) {
                out.insert((group.to_string(), resource.to_string()));
            }
        }
    }
    out
}

/// `status.used` for a quota (quota/v1/resources.go @36e95961 `CalculateUsage`): the resources
/// of `hard` (its `spec.hard`) that some evaluator accounts for, each from `used` or `0` (the
/// controller zero-fills), printed as quantities print. Untracked names (say `foo`) are left
/// out, as the quota controller leaves them out.
pub fn status_used(hard: &Value, used: &Usage) -> Value {
    let out: Map<String, Value> = hard
        .as_object()
        .into_iter()
        .flat_map(Map::keys)
        .filter(|k| tracked(k))
        .map(|k| {
            (k.clone(), Value::String(used.get(k).map_or_else(|| "0".into(), Quantity::to_string)))
        })
        .collect();
    Value::Object(out)
}

/// `status.hard` as the controller writes it: `spec.hard` with each quantity as stored.
pub fn status_hard(hard: &Value) -> Value {
    match hard.as_object() {
        Some(h) => Value::Object(h.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        None => Value::Object(Map::new()),
    }
}

/// `prettyPrint` (controller.go): `name=value` sorted by name, comma-joined.
fn pretty(list: &Usage) -> String {
    list.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Admission of `new_obj` (with `old_obj` on update) against one ResourceQuota, given the
/// quota's current usage (computed with [`quota_usage`]/[`namespace_usage`], standing in for
/// `status.used`). `Err` carries the plugin's message, which the API server wraps as
/// `<kind> "<name>" is forbidden: <message>` (HTTP 403). See [`admit_all`] for several quotas.
pub fn admit(
    quota: &Value,
    used: &Usage,
    plural: &str,
    new_obj: &Value,
    old_obj: Option<&Value>,
) -> Result<(), String> {
    admit_all(&[(quota, used)], plural, new_obj, old_obj)
}

/// `CheckRequest` (resourcequota/controller.go @b1ce15c5) over all quotas of the namespace, in the order
/// given: first every matching quota's constraints (`failed quota: <name>: must specify …`),
/// then a negative-usage check, then each matching quota's limits in turn; the first failure
/// is returned, so an object must fit every quota. Matching uses `spec.hard` (the plugin reads
/// `status.hard`, which the controller copies from it). On update the charge is the growth
/// over the old object (`SubtractWithNonNegativeResult`) when the old object has a
/// `resourceVersion` and matched the quota; zero charges are dropped before comparing.
pub fn admit_all(
    quotas: &[(&Value, &Usage)],
    plural: &str,
    new_obj: &Value,
    old_obj: Option<&Value>,
) -> Result<(), String> {
    let ev = Evaluator::of(plural, new_obj);
    if quotas.is_empty() || !ev.handles(new_obj, old_obj) {
        return Ok(());
    }
    let mut interesting = Vec::new();
    for (quota, used) in quotas {
        if !ev.matches(quota, new_obj) {
            continue;
        }
        let hard = hard(quota);
        if matches!(ev, Evaluator::Pods) {
            pod_constraints(&ev.matching(hard.keys().map(String::as_str)), new_obj)
                .map_err(|e| format!("failed quota: {}: {e}", str_at(quota, "/metadata/name")))?;
        }
        interesting.push((*quota, *used, hard));
    }
    let now = Utc::now();
    let input = ev.usage(new_obj, now);
    let negative: Vec<&str> =
        input.iter().filter(|(_, q)| q.signum() < 0).map(|(k, _)| k.as_str()).collect();
    if !negative.is_empty() {
        return Err(format!("quota usage is negative for resource(s): {}", negative.join(",")));
    }
    let previous = old_obj
        .filter(|o| crate::object::resource_version(o).is_some_and(|rv| !rv.is_empty()))
        .map(|o| (o, ev.usage(o, now)));
    for (quota, used, hard) in interesting {
        let mut delta = match &previous {
            Some((old, prev)) if ev.matches(quota, old) => subtract_non_negative(&input, prev),
            _ => input.clone(),
        };
        delta.retain(|k, q| !q.is_zero() && hard.contains_key(k));
        let exceeded: Vec<&String> = delta
            .iter()
            .filter(|(k, requested)| {
                let mut total = used.get(*k).cloned().unwrap_or_else(Quantity::zero);
                total.add(requested);
                hard.get(*k).is_some_and(|h| total > *h)
            })
            .map(|(k, _)| k)
            .collect();
        if exceeded.is_empty() {
            continue;
        }
        let pick = |from: &Usage, zero_fill: bool| -> Usage {
            exceeded
                .iter()
                .filter_map(|k| {
                    from.get(*k)
                        .cloned()
                        .or_else(|| zero_fill.then(Quantity::zero))
                        .map(|q| ((*k).clone(), q))
                })
                .collect()
        };
        return Err(format!(
            "exceeded quota: {}, requested: {}, used: {}, limited: {}",
            str_at(quota, "/metadata/name"),
            pretty(&pick(&delta, false)),
            pretty(&pick(used, true)),
            pretty(&pick(&hard, false)),
        ));
    }
    Ok(())
}

/// `quota.SubtractWithNonNegativeResult` (resources.go).
fn subtract_non_negative(a: &Usage, b: &Usage) -> Usage {
    let mut out = Usage::new();
    for (k, v) in a {
        let mut q = v.clone();
        if let Some(o) = b.get(k) {
            q.sub(o);
        }
        out.insert(k.clone(), if q.signum() > 0 { q } else { Quantity::zero() });
    }
    for k in b.keys() {
        out.entry(k.clone()).or_insert_with(Quantity::zero);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s} parses"))
    }

    fn shown(u: &Usage) -> BTreeMap<String, String> {
        u.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn pod(name: &str, containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"},
               "spec": {"containers": containers}})
    }

    fn res(req: Value, lim: Value) -> Value {
        json!({"requests": req, "limits": lim})
    }

    fn quota(name: &str, hard: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard}})
    }

    #[test]
    fn quantity_round_trips_print_canonically() {
        for (input, out) in [
            ("500m", "500m"),
            ("1", "1"),
            ("1.5", "1500m"),
            ("512Mi", "512Mi"),
            ("10Gi", "10Gi"),
            ("2G", "2G"),
            ("1e3", "1e3"),
            ("100k", "100k"),
            ("1000m", "1"),
            ("1000", "1k"),
            ("1024", "1024"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("1.1Ki", "1126400m"),
            ("0.1m", "100u"),
            ("0.0000000001", "1n"),
            ("1.0000000001", "1000000001n"),
            ("-1.5", "-1500m"),
            ("0", "0"),
            ("0.0", "0"),
            ("0Gi", "0"),
            ("1.5e3", "1500"),
            ("9Ei", "9223372036854775807"),
            ("12345678901234567890", "12345678901234567890"),
            // Go remembers canonical-looking input verbatim (quantity.go's `s` cache).
            ("1.500", "1.500"),
            ("+1", "+1"),
            ("01", "01"),
            // Go has no DecimalSI suffix for 10^21 and prints none.
            ("1000E", "1"),
        ] {
            assert_eq!(q(input).to_string(), out, "{input}");
        }
        assert_eq!(q("1.5").to_string(), q("1500m").to_string());
        assert_eq!(q("1Gi"), q("1073741824"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("1n"));
    }

    #[test]
    fn quantity_rejects_what_go_rejects() {
        for bad in [
            "", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-",
            " 1", "1 ", "1ki", "1KiB", "1K", "1e", "1Q", "1µ",
        ] {
            assert!(Quantity::parse(bad).is_none(), "{bad:?} must not parse");
        }
        assert_eq!(Quantity::from_value(&json!(2)).map(|q| q.to_string()).as_deref(), Some("2"));
        assert_eq!(
            Quantity::from_value(&json!(0.5)).map(|q| q.to_string()).as_deref(),
            Some("500m")
        );
        assert_eq!(parse_quantity("512Mi"), Some(512.0 * 1024.0 * 1024.0));
    }

    #[test]
    fn sums_take_the_format_of_the_first_nonzero_summand() {
        let sum = |xs: &[&str]| {
            let mut t = Quantity::zero();
            xs.iter().for_each(|x| t.add(&q(x)));
            t.to_string()
        };
        assert_eq!(sum(&["500m", "500m"]), "1");
        assert_eq!(sum(&["256Mi", "256Mi"]), "512Mi");
        assert_eq!(sum(&["1G", "512Mi"]), "1536870912");
        assert_eq!(sum(&["512Mi", "512Mi", "1Gi"]), "2Gi");
        assert_eq!(sum(&["1e3", "1e3"]), "2e3");
        assert_eq!(sum(&["1.500"]), "1500m");
    }

    #[test]
    fn pod_usage_sums_containers() {
        let p = pod(
            "p",
            json!([
                {"name": "a", "resources": res(json!({"cpu": "250m", "memory": "128Mi"}), json!({"cpu": "500m", "memory": "256Mi"}))},
                {"name": "b", "resources": res(json!({"cpu": "250m", "memory": "128Mi"}), json!({"cpu": "500m", "memory": "256Mi"}))},
                {"name": "c", "resources": {"limits": {"ephemeral-storage": "1Gi", "example.com/gpu": "1"}}},
            ]),
        );
        assert_eq!(
            shown(&usage("pods", &p)),
            map(&[
                ("count/pods", "1"),
                ("cpu", "500m"),
                ("ephemeral-storage", "1Gi"),
                ("limits.cpu", "1"),
                ("limits.ephemeral-storage", "1Gi"),
                ("limits.memory", "512Mi"),
                ("memory", "256Mi"),
                ("pods", "1"),
                ("requests.cpu", "500m"),
                ("requests.ephemeral-storage", "1Gi"),
                ("requests.example.com/gpu", "1"),
                ("requests.memory", "256Mi"),
            ])
        );
    }

    #[test]
    fn pod_usage_with_init_containers_and_sidecars() {
        let cpu =
            |name: &str, v: &str| json!({"name": name, "resources": {"requests": {"cpu": v}}});
        let mut p = pod("p", json!([cpu("app", "100m")]));
        p["spec"]["initContainers"] = json!([cpu("init", "500m")]);
        assert_eq!(usage("pods", &p)["requests.cpu"].to_string(), "500m");
        // A sidecar adds to the app containers and to every init container after it.
        let mut sidecar = cpu("sidecar", "200m");
        sidecar["restartPolicy"] = json!("Always");
        p["spec"]["initContainers"] = json!([sidecar, cpu("init", "250m")]);
        assert_eq!(usage("pods", &p)["requests.cpu"].to_string(), "450m");
        p["spec"]["initContainers"] = json!([cpu("init", "250m"), sidecar]);
        assert_eq!(usage("pods", &p)["requests.cpu"].to_string(), "300m");
    }

    #[test]
    fn pod_level_resources_replace_container_sums() {
        let mut p = pod(
            "p",
            json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}, {"name": "b"}]),
        );
        p["spec"]["resources"] = res(json!({"cpu": "1", "memory": "1Gi"}), json!({"cpu": "2"}));
        let u = shown(&usage("pods", &p));
        assert_eq!(u["requests.cpu"], "1");
        assert_eq!(u["requests.memory"], "1Gi");
        assert_eq!(u["limits.cpu"], "2");
        assert!(!u.contains_key("limits.memory"));
        // ...and lift the per-container "must specify" rule.
        let q = quota("q", json!({"limits.cpu": "4", "limits.memory": "4Gi"}));
        assert_eq!(admit(&q, &Usage::new(), "pods", &p, None), Ok(()));
    }

    #[test]
    fn terminal_and_expired_deleting_pods_only_count_as_objects() {
        let base = pod("p", json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        let mut done = base.clone();
        done["status"] = json!({"phase": "Succeeded"});
        let mut gone = base.clone();
        gone["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        gone["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        for p in [&done, &gone] {
            assert_eq!(shown(&usage("pods", p)), map(&[("count/pods", "1")]));
        }
        let mut leaving = base;
        leaving["metadata"]["deletionTimestamp"] = json!("2999-01-01T00:00:00Z");
        leaving["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(usage("pods", &leaving)["requests.cpu"].to_string(), "1");
        let used = namespace_usage(&[("pods", &[done, gone, leaving])]);
        assert_eq!(used["count/pods"].to_string(), "3");
        assert_eq!(used["pods"].to_string(), "1");
    }

    #[test]
    fn pvc_usage_per_storage_class() {
        let pvc = json!({"metadata": {"name": "data"},
            "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "10Gi"}}}});
        assert_eq!(
            shown(&usage("persistentvolumeclaims", &pvc)),
            map(&[
                ("count/persistentvolumeclaims", "1"),
                ("fast.storageclass.storage.k8s.io/persistentvolumeclaims", "1"),
                ("fast.storageclass.storage.k8s.io/requests.storage", "10Gi"),
                ("persistentvolumeclaims", "1"),
                ("requests.storage", "10Gi"),
            ])
        );
        let beta = json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "slow"}},
            "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1.5"}}},
            "status": {"allocatedResources": {"storage": "1"}}});
        let u = shown(&usage("persistentvolumeclaims", &beta));
        assert_eq!(u["slow.storageclass.storage.k8s.io/requests.storage"], "2");
        assert_eq!(u["requests.storage"], "2");
        let grown = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}},
            "status": {"allocatedResources": {"storage": "2Gi"}}});
        assert_eq!(usage("persistentvolumeclaims", &grown)["requests.storage"].to_string(), "2Gi");
    }

    #[test]
    fn service_node_ports_and_load_balancers() {
        let svc = |spec: Value| usage("services", &json!({"spec": spec}));
        let two = json!([{"port": 80}, {"port": 443, "nodePort": 30443}]);
        let u = svc(json!({"type": "NodePort", "ports": two}));
        assert_eq!(
            (u["services.nodeports"].to_string(), u["services.loadbalancers"].to_string()),
            ("2".into(), "0".into())
        );
        let u = svc(json!({"type": "LoadBalancer", "ports": two}));
        assert_eq!(
            (u["services.nodeports"].to_string(), u["services.loadbalancers"].to_string()),
            ("2".into(), "1".into())
        );
        let u = svc(
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": two}),
        );
        assert_eq!(u["services.nodeports"].to_string(), "1");
        let u = svc(json!({"ports": two}));
        assert_eq!(
            (u["services"].to_string(), u["services.nodeports"].to_string()),
            ("1".into(), "0".into())
        );
    }

    #[test]
    fn object_counts() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret"});
        assert_eq!(
            shown(&usage("secrets", &secret)),
            map(&[("count/secrets", "1"), ("secrets", "1")])
        );
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(
            usage("deployments", &deploy).keys().collect::<Vec<_>>(),
            ["count/deployments.apps"]
        );
        assert_eq!(
            usage("deployments.apps", &json!({})).keys().collect::<Vec<_>>(),
            ["count/deployments.apps"]
        );
        assert!(usage("events", &json!({"apiVersion": "v1"})).is_empty());
    }

    #[test]
    fn admit_reports_exceeded_quota_exactly() {
        let q = quota(
            "k3k-kraft",
            json!({"limits.cpu": "4", "limits.memory": "8Gi", "requests.cpu": "2"}),
        );
        let running = pod(
            "old",
            json!([{"name": "s", "resources": res(json!({"cpu": "1"}), json!({"cpu": "4", "memory": "1Gi"}))}]),
        );
        let used = namespace_usage(&[("pods", &[running])]);
        let new = pod(
            "new",
            json!([{"name": "x", "resources": res(json!({"cpu": "250m"}), json!({"cpu": "500m", "memory": "512Mi"}))}]),
        );
        assert_eq!(
            admit(&q, &used, "pods", &new, None),
            Err("exceeded quota: k3k-kraft, requested: limits.cpu=500m, used: limits.cpu=4, limited: limits.cpu=4".into())
        );
        let q = quota("k3k-kraft", json!({"limits.cpu": "4", "requests.cpu": "1", "pods": "10"}));
        assert_eq!(
            admit(&q, &used, "pods", &new, None),
            Err("exceeded quota: k3k-kraft, requested: limits.cpu=500m,requests.cpu=250m, used: limits.cpu=4,requests.cpu=1, limited: limits.cpu=4,requests.cpu=1".into())
        );
        // Nothing used yet: the zero the controller writes into status.used.
        let q = quota("q", json!({"count/secrets": "0"}));
        assert_eq!(
            admit(&q, &Usage::new(), "secrets", &json!({"apiVersion": "v1", "kind": "Secret"}), None),
            Err("exceeded quota: q, requested: count/secrets=1, used: count/secrets=0, limited: count/secrets=0".into())
        );
    }

    #[test]
    fn admit_requires_explicit_cpu_and_memory() {
        let q = quota(
            "k3k-kraft",
            json!({"limits.cpu": "4", "limits.memory": "8Gi", "requests.storage": "1Gi"}),
        );
        let p = pod("k3k-x-server-0", json!([{"name": "k3k-x-server"}]));
        assert_eq!(
            admit(&q, &Usage::new(), "pods", &p, None),
            Err("failed quota: k3k-kraft: must specify limits.cpu for: k3k-x-server; limits.memory for: k3k-x-server".into())
        );
        let mut p =
            pod("p", json!([{"name": "b", "resources": {"limits": {"cpu": "1"}}}, {"name": "a"}]));
        p["spec"]["initContainers"] =
            json!([{"name": "c", "resources": {"limits": {"memory": "1Gi"}}}]);
        assert_eq!(
            admit(&q, &Usage::new(), "pods", &p, None),
            Err(
                "failed quota: k3k-kraft: must specify limits.cpu for: a,c; limits.memory for: a,b"
                    .into()
            )
        );
        // A quota on something else neither constrains nor charges pods.
        let storage = quota("s", json!({"requests.storage": "1Gi"}));
        assert_eq!(
            admit(&storage, &Usage::new(), "pods", &pod("p", json!([{"name": "a"}])), None),
            Ok(())
        );
        // Constraints of every quota come before limits of any.
        let full = quota("a-full", json!({"pods": "0"}));
        let used = Usage::new();
        assert_eq!(
            admit_all(
                &[(&full, &used), (&q, &used)],
                "pods",
                &pod("p", json!([{"name": "a"}])),
                None
            ),
            Err("failed quota: k3k-kraft: must specify limits.cpu for: a; limits.memory for: a"
                .into())
        );
    }

    #[test]
    fn admit_updates_charge_only_growth() {
        let q = quota("q", json!({"services.loadbalancers": "0", "pods": "0"}));
        let old = json!({"metadata": {"name": "s", "resourceVersion": "5"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("LoadBalancer");
        let used = namespace_usage(&[("services", std::slice::from_ref(&old))]);
        assert_eq!(
            admit(&q, &used, "services", &new, Some(&old)),
            Err("exceeded quota: q, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0".into())
        );
        assert_eq!(admit(&q, &used, "services", &old, Some(&old)), Ok(()));
        // Pod updates that change neither resources nor the Terminating scope are not checked.
        let p = pod("p", json!([{"name": "a"}]));
        assert_eq!(admit(&q, &Usage::new(), "pods", &p, Some(&p)), Ok(()));
        assert!(admit(&q, &Usage::new(), "pods", &p, None).is_err());
    }

    #[test]
    fn admit_honours_scopes() {
        let mut q = quota("be", json!({"pods": "0"}));
        q["spec"]["scopes"] = json!(["BestEffort"]);
        let burstable = pod("p", json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        assert_eq!(admit(&q, &Usage::new(), "pods", &burstable, None), Ok(()));
        assert!(admit(&q, &Usage::new(), "pods", &pod("p", json!([{"name": "a"}])), None).is_err());
        let mut pc = quota("pc", json!({"pods": "0"}));
        pc["spec"]["scopeSelector"] = json!({"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]});
        let mut high = pod("h", json!([{"name": "a"}]));
        assert_eq!(admit(&pc, &Usage::new(), "pods", &high, None), Ok(()));
        high["spec"]["priorityClassName"] = json!("high");
        assert!(admit(&pc, &Usage::new(), "pods", &high, None).is_err());
        // Scoped usage only sums matching pods.
        assert_eq!(
            quota_usage(&q, &[("pods", &[burstable, high])]).get("pods").map(|q| q.to_string()),
            Some("1".into())
        );
    }

    #[test]
    fn status_used_lists_only_tracked_hard_keys() {
        let hard = json!({"pods": "10", "requests.cpu": "4", "foo": "1", "count/secrets": "5",
                          "requests.memory": "8Gi", "count/deployments.apps": "2"});
        let lr = json!({"requests": {"cpu": "500m", "memory": "256Mi"}});
        let pods = [
            pod("a", json!([{"name": "a", "resources": lr}])),
            pod("b", json!([{"name": "b", "resources": lr}])),
        ];
        let used = namespace_usage(&[("pods", &pods)]);
        assert_eq!(
            status_used(&hard, &used),
            json!({"pods": "2", "requests.cpu": "1", "requests.memory": "512Mi", "count/secrets": "0",
                   "count/deployments.apps": "0"})
        );
        assert_eq!(
            status_hard(&json!({"cpu": "1.5", "memory": "1024Mi"})),
            json!({"cpu": "1500m", "memory": "1Gi"})
        );
        assert_eq!(
            counted_resources(&hard).into_iter().collect::<Vec<_>>(),
            [
                ("".into(), "pods".into()),
                ("".into(), "secrets".into()),
                ("apps".into(), "deployments".into())
            ]
        );
    }
}
