// Thin wrappers over OpenBLAS sgemm and the thread count shared by BLAS and our own loops.
#pragma once

namespace parafine {

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// lda/ldb/ldc are the row strides of A, B, C as stored.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

// Threads used by sgemm and by the element-wise loops (OpenMP). Must be >= 1.
void set_threads(int threads);
int threads();

}  // namespace parafine

namespace parafine {

// Whether a loop of this many element operations is worth an OpenMP parallel region. Small
// loops run serially: a parallel region costs microseconds, and far more when the cores are
// shared with other ranks.
inline bool parallel_worth(double work) {
  return work >= 65536.0;
}

}  // namespace parafine
