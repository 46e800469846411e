// Whole launches of the exact CUDA GEMM kernel and its split-K reduction (csrc/cuda/gemm_exact.cuh),
// run on the host by emulate.h: DenseOperand in both orientations of A and B (vector and scalar
// loads, leading dimensions wider than the matrix, partial edge tiles), the tiled main loop, the
// block -> tile walk, gemm_store's alpha / beta / bias, and split-K partials summed by the
// reduction kernel. C is compared in full with a float64 direct loop, for each tile shape gemm.cu
// launches (large / medium / small in float32, medium in float64) and all four transposes; then
// through cuda::gemm itself (gemm.cu compiled as host code: its plan, split-K and scratch), and
// with "high" precision through the TF32 kernel of gemm_tf32.cu (its cp.async pipeline, fragment
// layouts and mma.sync emulated by emulate.h) at both of its tile shapes, against a reference of
// the TF32-rounded operands.
// Tolerance: |got - want| <= rtol * (sum of |terms|), rtol 1e-13 for float64, 2e-6 for float32.
// Built and run by tests/test_cuda_index_maps.py.
#include "emulate.h"  // first: turns the CUDA keywords into host code

#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/gemm.h"
#include "cuda/gemm_exact.cuh"
#include "workspace.h"

using namespace fastnn::cuda::detail;

int fails = 0;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The epilogue (common/shapes/gemm.h) as flags: kBiasCol | kBiasRow | kRelu.
constexpr int kBiasCol = 1, kBiasRow = 2, kRelu = 4;

template <class T, Tile TILE, bool TA, bool TB>
void check(int64_t M, int64_t N, int64_t K, int splits_wanted, int epilogue, double beta, bool pad_ld,
           bool via_gemm = false, bool tf32 = false, int device = 0) {
  const bool with_bias = epilogue & kBiasCol, with_row_bias = epilogue & kBiasRow, relu = epilogue & kRelu;
  using C = ExactConfig<T, TILE>;
  constexpr int threads = (C::BM / C::TM) * (C::BN / C::TN);
  // A stored (M, K) or, TA, (K, M); B stored (K, N) or, TB, (N, K). Padded leading dimensions
  // (not a multiple of 16 bytes) force the scalar path (and decline TF32); otherwise rows are
  // rounded up to whole 16-byte vectors, for the vector loads and cp.async.
  const int64_t a_rows = TA ? K : M, a_cols = TA ? M : K, b_rows = TB ? N : K, b_cols = TB ? K : N;
  const int64_t lda = pad_ld ? a_cols + 3 : (a_cols + 3) / 4 * 4, ldb = pad_ld ? b_cols + 1 : (b_cols + 3) / 4 * 4;
  const int64_t ldc = N + 2;
  // TF32 runs where both operands allow 16-byte copies (gemm_tf32's condition); its operands are
  // rounded to TF32 first, so the reference rounds them the same way.
  const bool uses_tf32 = tf32 && !pad_ld;
  auto operand = [&](T v) { return uses_tf32 ? double(emu::value_of_tf32(emu::to_tf32(float(v)))) : double(v); };
  std::mt19937 rng(static_cast<unsigned>(M * 7 + N * 3 + K));
  std::normal_distribution<double> normal;
  const size_t guard = 4096;
  Guarded<T> a(a_rows * lda, guard), b(b_rows * ldb, guard), bias(N, guard), row_bias(M, guard), c(M * ldc, guard);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<T>(normal(rng));
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<T>(normal(rng));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = static_cast<T>(normal(rng));
  for (size_t i = 0; i < row_bias.size(); ++i) row_bias[i] = static_cast<T>(normal(rng));
  for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<T>(normal(rng));  // the prior C (beta), and the gaps
  const T alpha = T(0.75);
  std::vector<double> want(c.size()), scale(c.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < ldc; ++n) {
      const size_t ci = m * ldc + n;
      want[ci] = c[ci], scale[ci] = std::fabs(static_cast<double>(c[ci]));  // the gaps stay as they are
      if (n >= N) continue;
      double sum = 0, abs_sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double av = operand(TA ? a[k * lda + m] : a[m * lda + k]), bv = operand(TB ? b[n * ldb + k] : b[k * ldb + n]);
        sum += av * bv, abs_sum += std::fabs(av * bv);
      }
      want[ci] = double(alpha) * sum + beta * static_cast<double>(c[ci]) + (with_bias ? double(bias[n]) : 0.0) +
                 (with_row_bias ? double(row_bias[m]) : 0.0);
      if (relu) want[ci] = std::max(want[ci], 0.0);
      scale[ci] = abs_sum + std::fabs(beta * static_cast<double>(c[ci])) + (with_bias ? std::fabs(double(bias[n])) : 0.0) +
                  (with_row_bias ? std::fabs(double(row_bias[m])) : 0.0);
    }

  if (via_gemm) {  // the public entry point: gemm.cu's plan picks the tile shape and the splits
    fastnn::GemmShape gs;
    gs.M = M, gs.N = N, gs.K = K, gs.trans_a = TA, gs.trans_b = TB, gs.lda = lda, gs.ldb = ldb, gs.ldc = ldc;
    HostWorkspace ws;
    emu::current_device = device;
    if (tf32) fastnn::cuda::set_matmul_precision(fastnn::cuda::MatmulPrecision::high);
    fastnn::GemmEpilogue<T> ep;
    ep.bias_per_col = with_bias ? bias.data() : nullptr;
    ep.bias_per_row = with_row_bias ? row_bias.data() : nullptr;
    ep.relu = relu;
    fastnn::cuda::gemm(gs, alpha, a.data(), b.data(), static_cast<T>(beta), c.data(), ep, fastnn::cuda::Exec{nullptr, &ws});
    fastnn::cuda::set_matmul_precision(fastnn::cuda::MatmulPrecision::highest);
    emu::current_device = 0;
    const double rtol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
    const double err = worst_error(c, want, scale);
    if (!(err <= rtol && c.guards_intact()) && fails++ < 20)
      std::printf("cuda::gemm %s%s on device %d TA%d TB%d M%ld N%ld K%ld epilogue %d beta %g: worst error %.3g%s\n",
                  std::is_same_v<T, double> ? "float64" : "float32", uses_tf32 ? " (TF32)" : "", device, TA, TB, (long)M,
                  (long)N, (long)K, epilogue, beta, err, c.guards_intact() ? "" : ", wrote outside C");
    return;
  }
  GemmParams<T> p{};
  p.a = a.data(), p.b = b.data(), p.c = c.data();
  p.bias_per_col = with_bias ? bias.data() : nullptr;
  p.bias_per_row = with_row_bias ? row_bias.data() : nullptr;
  p.relu = relu;
  p.M = M, p.N = N, p.K = K, p.lda = lda, p.ldb = ldb, p.ldc = ldc;
  p.alpha = alpha, p.beta = static_cast<T>(beta);
  p.vec_a = reinterpret_cast<uintptr_t>(p.a) % 16 == 0 && (lda * sizeof(T)) % 16 == 0;  // gemm.cu's rule
  p.vec_b = reinterpret_cast<uintptr_t>(p.b) % 16 == 0 && (ldb * sizeof(T)) % 16 == 0;
  p.tiles_m = static_cast<int>(ceil_div(M, C::BM)), p.tiles_n = static_cast<int>(ceil_div(N, C::BN));
  p.k_per_split = ceil_div(ceil_div(K, C::BK), splits_wanted) * C::BK;  // plan_split_k's rounding
  const int splits = static_cast<int>(std::max<int64_t>(1, ceil_div(K, p.k_per_split)));
  Guarded<T> partial(static_cast<size_t>(splits * M * N), guard);
  p.partial = splits > 1 ? partial.data() : nullptr;
  emu::launch(dim3(p.tiles_m * p.tiles_n, 1, splits), dim3(threads), gemm_exact_kernel<T, C::BM, C::BN, C::BK, C::TM, C::TN, TA, TB>, p);
  if (splits > 1) emu::launch(dim3(3), dim3(64), gemm_reduce_splits_kernel<T>, p, splits);

  const double rtol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
  const double err = worst_error(c, want, scale);
  if (!(err <= rtol && c.guards_intact()) && fails++ < 20)
    std::printf("gemm %s tile %dx%d TA%d TB%d M%ld N%ld K%ld splits %d epilogue %d beta %g vec %d/%d: worst error %.3g%s\n",
                std::is_same_v<T, double> ? "float64" : "float32", C::BM, C::BN, TA, TB, (long)M, (long)N, (long)K,
                splits, epilogue, beta, p.vec_a, p.vec_b, err, c.guards_intact() ? "" : ", wrote outside C");
}

template <class T, Tile TILE>
void all_transposes(int64_t M, int64_t N, int64_t K, int splits, int bias, double beta, bool pad,
                    bool via_gemm = false, bool tf32 = false, int device = 0) {
  check<T, TILE, false, false>(M, N, K, splits, bias, beta, pad, via_gemm, tf32, device);
  check<T, TILE, false, true>(M, N, K, splits, bias, beta, pad, via_gemm, tf32, device);
  check<T, TILE, true, false>(M, N, K, splits, bias, beta, pad, via_gemm, tf32, device);
  check<T, TILE, true, true>(M, N, K, splits, bias, beta, pad, via_gemm, tf32, device);
}

int main() {
  // Edge tiles in both directions, K not a multiple of BK, one and several splits.
  all_transposes<float, Tile::large>(150, 133, 37, 1, true, 0.0, false);
  all_transposes<float, Tile::large>(129, 20, 64, 3, false, 1.0, true);
  all_transposes<float, Tile::medium>(70, 68, 37, 1, false, 0.5, false);
  all_transposes<float, Tile::medium>(65, 130, 100, 4, true, 1.0, true);
  all_transposes<float, Tile::small>(40, 36, 20, 1, true, 0.0, true);
  all_transposes<float, Tile::small>(33, 7, 130, 5, false, 0.0, false);
  all_transposes<double, Tile::medium>(70, 68, 37, 1, true, 1.0, false);
  all_transposes<double, Tile::medium>(5, 97, 90, 3, false, 0.0, true);
  all_transposes<double, Tile::medium>(1, 1, 1, 1, true, 0.0, false);
  // The whole epilogue: a bias per row, ReLU, both biases, after one kernel and after split K.
  all_transposes<float, Tile::medium>(70, 68, 37, 1, kBiasRow | kRelu, 0.5, false);
  all_transposes<float, Tile::small>(33, 7, 130, 5, kBiasCol | kBiasRow | kRelu, 1.0, false);
  all_transposes<double, Tile::medium>(5, 97, 90, 3, kRelu, 0.0, true);
  // Through cuda::gemm (one emulated multiprocessor: small products split K).
  all_transposes<float, Tile::large>(150, 133, 37, 1, true, 0.0, false, true);
  all_transposes<float, Tile::large>(20, 30, 300, 1, false, 1.0, true, true);
  all_transposes<double, Tile::medium>(70, 68, 37, 1, true, 0.5, true, true);
  all_transposes<double, Tile::medium>(9, 5, 200, 1, false, 0.0, false, true);
  all_transposes<float, Tile::large>(20, 30, 300, 1, kBiasCol | kBiasRow | kRelu, 1.0, true, true);
  // TF32 ("high" precision): 128 x 128 tiles and split K on device 0, 64 x 64 tiles on device 1
  // (132 multiprocessors); padded operands decline it and run exact.
  all_transposes<float, Tile::large>(150, 133, 37, 1, true, 0.0, false, true, true, 0);
  all_transposes<float, Tile::large>(20, 30, 300, 1, false, 1.0, false, true, true, 0);
  all_transposes<float, Tile::large>(70, 68, 45, 1, true, 0.5, false, true, true, 1);
  all_transposes<float, Tile::large>(33, 9, 16, 1, false, 0.0, true, true, true, 1);
  all_transposes<float, Tile::large>(70, 68, 45, 1, kBiasRow | kRelu, 0.5, false, true, true, 1);
  std::printf(fails ? "FAILED (%d)\n" : "gemm kernels, emulated launches: ok\n", fails);
  return fails != 0;
}
