//! Distance kernels: a scalar version everywhere, AVX2+FMA on x86-64 when the CPU has it.
//!
//! The kernel is chosen once, when an index is created (for its metric and width), and called
//! through a function pointer; an exact scan instead runs its whole loop in one call ([`scan`]),
//! and a graph walk in one call of [`with_score`], each compiled for AVX2 with the width's
//! kernel inlined.
//! This is the only module of the crate that uses `unsafe`: the intrinsics themselves, and the
//! calls into functions compiled for a CPU feature the running CPU was checked to have.
#![expect(
    unsafe_code,
    reason = "SIMD intrinsics, called only after the CPU was checked to have the feature"
)]

/// A distance between two vectors of the same width; smaller is nearer.
pub type Kernel = fn(&[f32], &[f32]) -> f32;

/// How nearness is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Euclidean; the graph works on squared distances and reports the root.
    L2,
    /// Cosine: vectors are normalised on the way in and compared by `1 - dot`.
    Cosine,
    /// Inner product, compared by `-dot` (larger products are nearer).
    InnerProduct,
}

impl Metric {
    /// Stable code for snapshots.
    pub fn code(self) -> u8 {
        match self {
            Metric::L2 => 0,
            Metric::Cosine => 1,
            Metric::InnerProduct => 2,
        }
    }

    /// Inverse of [`Metric::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::Cosine),
            2 => Some(Metric::InnerProduct),
            _ => None,
        }
    }

    /// The internal distance turned into the one callers see.
    pub fn report(self, internal: f32) -> f32 {
        match self {
            Metric::L2 => internal.max(0.0).sqrt(),
            Metric::Cosine => (1.0 + internal).max(0.0),
            Metric::InnerProduct => internal,
        }
    }
}

/// Which instruction set the chosen kernel uses, for logs and benchmark reports.
pub fn kernel_name() -> &'static str {
    kernels(Metric::L2, 0)[0].0
}

/// The fastest kernel for `metric` on vectors of `dim` on this CPU.
pub fn kernel(metric: Metric, dim: usize) -> Kernel {
    kernels(metric, dim)[0].1
}

/// Every kernel this CPU can run for `metric` on vectors of `dim`, named, fastest first; the
/// scalar one is last and always present. The widths FireSight's encoders produce (16 for the
/// event encoder, 384 for MiniLM) and SIFT's 128 get a kernel compiled for that width: no loop
/// bounds or tail to test, and for 16 no loop at all. Any width gets the general one.
pub fn kernels(metric: Metric, dim: usize) -> Vec<(&'static str, Kernel)> {
    let l2 = metric == Metric::L2;
    let mut out: Vec<(&'static str, Kernel)> = Vec::with_capacity(3);
    if avx2_available() {
        let fixed: Option<Kernel> = match (l2, dim) {
            (true, 16) => Some(l2_avx2_fixed::<16>),
            (true, 128) => Some(l2_avx2_fixed::<128>),
            (true, 384) => Some(l2_avx2_fixed::<384>),
            (false, 16) => Some(neg_dot_avx2_fixed::<16>),
            (false, 128) => Some(neg_dot_avx2_fixed::<128>),
            (false, 384) => Some(neg_dot_avx2_fixed::<384>),
            _ => None,
        };
        if let Some(fixed) = fixed {
            out.push(("avx2+fma", fixed));
        }
        out.push((
            "avx2+fma",
            if l2 {
                l2_avx2_entry
            } else {
                neg_dot_avx2_entry
            },
        ));
    }
    out.push(("scalar", scalar_kernel(metric)));
    out
}

/// Scores each vector of `vectors` (consecutive, `q.len()` wide) that `wanted` lets through
/// (by its index) against `q`, handing its index and distance to `found`. One call for a whole
/// scan, so that on the encoders' widths the loop is compiled for AVX2 with the kernel inlined,
/// instead of calling the kernel through a pointer once per vector.
pub fn scan(
    metric: Metric,
    q: &[f32],
    vectors: &[f32],
    wanted: impl FnMut(usize) -> bool,
    found: impl FnMut(usize, f32),
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_available() {
        let l2 = metric == Metric::L2;
        // SAFETY (each arm): the CPU was just checked to have AVX2 and FMA.
        match (l2, q.len()) {
            (true, 16) => {
                return unsafe { x86::scan_fixed::<16, true>(q, vectors, wanted, found) };
            }
            (true, 128) => {
                return unsafe { x86::scan_fixed::<128, true>(q, vectors, wanted, found) };
            }
            (true, 384) => {
                return unsafe { x86::scan_fixed::<384, true>(q, vectors, wanted, found) };
            }
            (false, 16) => {
                return unsafe { x86::scan_fixed::<16, false>(q, vectors, wanted, found) };
            }
            (false, 128) => {
                return unsafe { x86::scan_fixed::<128, false>(q, vectors, wanted, found) };
            }
            (false, 384) => {
                return unsafe { x86::scan_fixed::<384, false>(q, vectors, wanted, found) };
            }
            _ => {}
        }
    }
    scan_with(kernel(metric, q.len()), q, vectors, wanted, found);
}

/// How a walk scores a stored vector against its query.
pub trait Score {
    /// The distance between `q` and `v`, as the index's kernel gives it.
    fn score(&self, q: &[f32], v: &[f32]) -> f32;
}

impl Score for Kernel {
    #[inline(always)]
    fn score(&self, q: &[f32], v: &[f32]) -> f32 {
        self(q, v)
    }
}

/// Work that scores vectors: a graph walk, handed a [`Score`] by [`with_score`].
pub trait Walk {
    /// What the work gives back.
    type Out;
    /// Does the work, scoring with `score`.
    fn run<S: Score>(self, score: S) -> Self::Out;
}

/// Runs `work` with the index's kernel. On the encoders' widths (and SIFT's) on a CPU with AVX2,
/// the work runs inside one function compiled for AVX2 with the width's kernel inlined into its
/// loop, instead of a call through `kernel` per distance; elsewhere it calls `kernel`.
pub fn with_score<W: Walk>(metric: Metric, dim: usize, kernel: Kernel, work: W) -> W::Out {
    #[cfg(target_arch = "x86_64")]
    if avx2_available() {
        let l2 = metric == Metric::L2;
        // SAFETY (each arm): the CPU was just checked to have AVX2 and FMA.
        match (l2, dim) {
            (true, 16) => return unsafe { x86::with_fixed::<16, true, W>(work) },
            (true, 128) => return unsafe { x86::with_fixed::<128, true, W>(work) },
            (true, 384) => return unsafe { x86::with_fixed::<384, true, W>(work) },
            (false, 16) => return unsafe { x86::with_fixed::<16, false, W>(work) },
            (false, 128) => return unsafe { x86::with_fixed::<128, false, W>(work) },
            (false, 384) => return unsafe { x86::with_fixed::<384, false, W>(work) },
            _ => {}
        }
    }
    let _ = (metric, dim);
    work.run(kernel)
}

/// [`scan`] through a kernel pointer: any width, any CPU.
fn scan_with(
    kernel: Kernel,
    q: &[f32],
    vectors: &[f32],
    mut wanted: impl FnMut(usize) -> bool,
    mut found: impl FnMut(usize, f32),
) {
    if q.is_empty() {
        return;
    }
    for (i, v) in vectors.chunks_exact(q.len()).enumerate() {
        if wanted(i) {
            found(i, kernel(q, v));
        }
    }
}

/// The scalar kernel for `metric`, for cross-checks.
pub fn scalar_kernel(metric: Metric) -> Kernel {
    match metric {
        Metric::L2 => l2_scalar,
        _ => neg_dot_scalar,
    }
}

/// Cosine distances need unit vectors; the others take vectors as they are.
pub fn prepare(metric: Metric, v: &[f32]) -> Vec<f32> {
    let mut out = v.to_vec();
    if metric == Metric::Cosine {
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            out.iter_mut().for_each(|x| *x /= norm);
        }
    }
    out
}

/// Squared Euclidean distance, four independent accumulators so the compiler can vectorise.
pub fn l2_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
}

/// Negated dot product (so that smaller is nearer); for unit vectors `1 - dot` is the cosine
/// distance, and the constant does not change any ordering, so the graph uses `-dot` for both.
pub fn neg_dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    -(acc.iter().sum::<f32>() + tail)
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn l2_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function is only handed out by `kernel` after `avx2_available` said yes.
    unsafe { x86::l2(a, b) }
}

#[cfg(target_arch = "x86_64")]
fn neg_dot_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: as above.
    unsafe { -x86::dot(a, b) }
}

/// [`x86::l2_fixed`] for vectors of exactly `N`; any other length takes the general kernel.
#[cfg(target_arch = "x86_64")]
fn l2_avx2_fixed<const N: usize>(a: &[f32], b: &[f32]) -> f32 {
    match (<&[f32; N]>::try_from(a), <&[f32; N]>::try_from(b)) {
        // SAFETY: handed out by `kernels` only after `avx2_available` said yes.
        (Ok(a), Ok(b)) => unsafe { x86::l2_fixed(a, b) },
        _ => l2_avx2_entry(a, b),
    }
}

/// [`x86::dot_fixed`], negated, for vectors of exactly `N`.
#[cfg(target_arch = "x86_64")]
fn neg_dot_avx2_fixed<const N: usize>(a: &[f32], b: &[f32]) -> f32 {
    match (<&[f32; N]>::try_from(a), <&[f32; N]>::try_from(b)) {
        // SAFETY: as above.
        (Ok(a), Ok(b)) => unsafe { -x86::dot_fixed(a, b) },
        _ => neg_dot_avx2_entry(a, b),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn l2_avx2_fixed<const N: usize>(a: &[f32], b: &[f32]) -> f32 {
    l2_scalar(a, b)
}

#[cfg(not(target_arch = "x86_64"))]
fn neg_dot_avx2_fixed<const N: usize>(a: &[f32], b: &[f32]) -> f32 {
    neg_dot_scalar(a, b)
}

#[cfg(not(target_arch = "x86_64"))]
fn l2_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
    l2_scalar(a, b)
}

#[cfg(not(target_arch = "x86_64"))]
fn neg_dot_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
    neg_dot_scalar(a, b)
}

/// Asks the CPU to start loading the cache line holding `v`'s start.
#[inline]
pub fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch is a hint; it never faults, and SSE is part of x86-64's baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(v.as_ptr().cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Asks the CPU to start loading the first cache lines of a neighbour list: its count and the
/// first 31 ids, which is all a list of a sparse level holds and the part a dense list's walk
/// reads first.
#[inline]
pub fn prefetch_words(list: &[std::sync::atomic::AtomicU32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let at = list.as_ptr().cast::<i8>();
        // SAFETY: prefetch is a hint and never faults, whatever the address; SSE is part of
        // x86-64's baseline.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(at);
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = list;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// The first `lanes` (a multiple of 8) of two vectors, 16 a step on two accumulators, then
    /// 8: their squared differences summed when `L2`, else their products, in eight lanes.
    /// Inlined into each kernel, so for a fixed width the loop's bounds are constants.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `pa` and `pb` must each point at `lanes` floats.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn lanes<const L2: bool>(pa: *const f32, pb: *const f32, lanes: usize) -> __m256 {
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        let step = |acc: __m256, x: __m256, y: __m256| {
            if L2 {
                let d = _mm256_sub_ps(x, y);
                _mm256_fmadd_ps(d, d, acc)
            } else {
                _mm256_fmadd_ps(x, y, acc)
            }
        };
        while i + 16 <= lanes {
            // SAFETY: i + 16 <= lanes, so all sixteen floats from i are within both vectors.
            let (a0, b0, a1, b1) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i)),
                    _mm256_loadu_ps(pb.add(i)),
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                )
            };
            s0 = step(s0, a0, b0);
            s1 = step(s1, a1, b1);
            i += 16;
        }
        if i + 8 <= lanes {
            // SAFETY: i + 8 <= lanes, so the eight floats from i are within both vectors.
            let (a0, b0) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            s0 = step(s0, a0, b0);
        }
        _mm256_add_ps(s0, s1)
    }

    /// Squared L2 (`L2`) or dot product of two vectors of any equal length: eight lanes at a
    /// time, then a scalar tail.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn any_width<const L2: bool>(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let body = n & !7;
        // SAFETY: both slices hold at least `n >= body` floats.
        let mut sum = hsum(unsafe { lanes::<L2>(a.as_ptr(), b.as_ptr(), body) });
        for (x, y) in a[body..n].iter().zip(&b[body..n]) {
            sum += if L2 { (x - y) * (x - y) } else { x * y };
        }
        sum
    }

    /// Squared L2 of two vectors of any equal length.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: the caller vouches for the features, which this function has too.
        unsafe { any_width::<true>(a, b) }
    }

    /// Dot product of two vectors of any equal length.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { any_width::<false>(a, b) }
    }

    /// Squared L2 over exactly `N` lanes, `N` a multiple of 8: no tail, constant bounds.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_fixed<const N: usize>(a: &[f32; N], b: &[f32; N]) -> f32 {
        const { assert!(N.is_multiple_of(8) && N > 0) };
        // SAFETY: both arrays hold N floats.
        hsum(unsafe { lanes::<true>(a.as_ptr(), b.as_ptr(), N) })
    }

    /// Dot product over exactly `N` lanes, as [`l2_fixed`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_fixed<const N: usize>(a: &[f32; N], b: &[f32; N]) -> f32 {
        const { assert!(N.is_multiple_of(8) && N > 0) };
        // SAFETY: both arrays hold N floats.
        hsum(unsafe { lanes::<false>(a.as_ptr(), b.as_ptr(), N) })
    }

    /// [`super::scan`] on vectors of exactly `N`: squared L2 when `L2`, else the negated dot
    /// product. A `q` of another length scores nothing; the caller matched it to `N`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scan_fixed<const N: usize, const L2: bool>(
        q: &[f32],
        vectors: &[f32],
        mut wanted: impl FnMut(usize) -> bool,
        mut found: impl FnMut(usize, f32),
    ) {
        let Ok(q) = <&[f32; N]>::try_from(q) else {
            return;
        };
        let (rows, _) = vectors.as_chunks::<N>();
        for (i, v) in rows.iter().enumerate() {
            if wanted(i) {
                // SAFETY: this function's own features are the ones the kernels need.
                let d = unsafe { if L2 { l2_fixed(q, v) } else { -dot_fixed(q, v) } };
                found(i, d);
            }
        }
    }

    /// The width's kernel as a [`super::Score`]: squared L2 when `L2`, else the negated dot
    /// product. Made only by [`with_fixed`], so only on a CPU with AVX2 and FMA.
    pub struct Fixed<const N: usize, const L2: bool>(());

    impl<const N: usize, const L2: bool> super::Score for Fixed<N, L2> {
        #[inline(always)]
        fn score(&self, q: &[f32], v: &[f32]) -> f32 {
            // SAFETY (both): a `Fixed` exists only inside `with_fixed`, which is called only
            // after the CPU was checked to have AVX2 and FMA.
            match (<&[f32; N]>::try_from(q), <&[f32; N]>::try_from(v)) {
                (Ok(q), Ok(v)) => unsafe { if L2 { l2_fixed(q, v) } else { -dot_fixed(q, v) } },
                _ => unsafe { if L2 { l2(q, v) } else { -dot(q, v) } },
            }
        }
    }

    /// Runs `work` with [`Fixed`], in a function compiled for AVX2 and FMA: the work's walk
    /// (inlined here) gets the kernel inlined into its loop.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn with_fixed<const N: usize, const L2: bool, W: super::Walk>(work: W) -> W::Out {
        work.run(Fixed::<N, L2>(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_kernels_agree_with_scalar_at_every_width() {
        for dim in [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 100, 128, 384] {
            let a: Vec<f32> = (0..dim)
                .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0)
                .collect();
            let b: Vec<f32> = (0..dim)
                .map(|i| ((i * 104729) % 19) as f32 * 0.29 - 2.5)
                .collect();
            for metric in [Metric::L2, Metric::InnerProduct] {
                let slow = scalar_kernel(metric)(&a, &b);
                for (name, fast) in kernels(metric, dim) {
                    let fast = fast(&a, &b);
                    let tolerance = 1e-4 * slow.abs().max(1.0);
                    assert!(
                        (fast - slow).abs() <= tolerance,
                        "{name} {metric:?} dim {dim}: {fast} vs {slow}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_encoders_widths_get_their_own_kernel_and_it_falls_back_on_any_other_length() {
        if avx2_available() {
            for dim in [16, 128, 384] {
                assert_eq!(kernels(Metric::L2, dim).len(), 3, "width {dim}");
            }
            assert_eq!(kernels(Metric::L2, 17).len(), 2);
            // A fixed kernel handed vectors of another length answers as the general one (AVX2
            // code too: only called on a CPU that has it, as `kernels` only hands it out then).
            let a: Vec<f32> = (0..17).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..17).map(|i| 3.0 - i as f32).collect();
            assert!((l2_avx2_fixed::<16>(&a, &b) - l2_scalar(&a, &b)).abs() < 1e-3);
            assert!((neg_dot_avx2_fixed::<16>(&a, &b) - neg_dot_scalar(&a, &b)).abs() < 1e-3);
        }
    }

    /// A query and `n` vectors of `dim`, spread over a few units, for comparing kernels.
    fn query_and_vectors(dim: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let q = (0..dim).map(|i| (i % 5) as f32 * 0.4 - 1.0).collect();
        let vectors = (0..dim * n)
            .map(|i| ((i * 7919) % 31) as f32 * 0.21 - 3.0)
            .collect();
        (q, vectors)
    }

    /// Scores every vector of a set against one query with whatever [`with_score`] hands it.
    struct ScoreAll<'a> {
        q: &'a [f32],
        vectors: &'a [f32],
    }

    impl Walk for ScoreAll<'_> {
        type Out = Vec<f32>;
        fn run<S: Score>(self, score: S) -> Vec<f32> {
            self.vectors
                .chunks_exact(self.q.len())
                .map(|v| score.score(self.q, v))
                .collect()
        }
    }

    #[test]
    fn a_walk_scores_with_the_width_s_kernel_as_the_scalar_kernel_does() {
        for dim in [3, 16, 17, 128, 384] {
            let (q, vectors) = query_and_vectors(dim, 20);
            for metric in [Metric::L2, Metric::InnerProduct] {
                let work = ScoreAll {
                    q: &q,
                    vectors: &vectors,
                };
                let got = with_score(metric, dim, kernel(metric, dim), work);
                let want: Vec<f32> = vectors
                    .chunks_exact(dim)
                    .map(|v| scalar_kernel(metric)(&q, v))
                    .collect();
                assert_eq!(got.len(), want.len(), "{metric:?} dim {dim}");
                for (n, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{metric:?} dim {dim} vector {n}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_scan_scores_what_its_filter_lets_through_as_the_kernel_does() {
        for dim in [3, 16, 17, 128, 384] {
            let (q, vectors) = query_and_vectors(dim, 50);
            for metric in [Metric::L2, Metric::InnerProduct] {
                let mut got = Vec::new();
                scan(
                    metric,
                    &q,
                    &vectors,
                    |i| i % 3 != 1,
                    |i, d| got.push((i, d)),
                );
                let want: Vec<(usize, f32)> = vectors
                    .chunks_exact(dim)
                    .enumerate()
                    .filter(|(i, _)| i % 3 != 1)
                    .map(|(i, v)| (i, scalar_kernel(metric)(&q, v)))
                    .collect();
                assert_eq!(got.len(), want.len(), "{metric:?} dim {dim}");
                for ((gi, gd), (wi, wd)) in got.iter().zip(&want) {
                    assert_eq!(gi, wi);
                    assert!(
                        (gd - wd).abs() <= 1e-4 * wd.abs().max(1.0),
                        "{metric:?} dim {dim} vector {gi}: {gd} vs {wd}"
                    );
                }
            }
        }
    }

    #[test]
    fn cosine_preparation_makes_unit_vectors_and_leaves_zero_alone() {
        let v = prepare(Metric::Cosine, &[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(prepare(Metric::Cosine, &[0.0, 0.0]), vec![0.0, 0.0]);
        assert_eq!(prepare(Metric::L2, &[3.0, 4.0]), vec![3.0, 4.0]);
    }
}
