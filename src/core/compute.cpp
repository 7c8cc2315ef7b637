// OpenBLAS sgemm wrapper and thread-count control.
#include "parafine/core/compute.hpp"

#include <cblas.h>
#include <omp.h>

#include <stdexcept>
#include <string>

namespace parafine {

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void set_threads(int t) {
  if (t < 1) throw std::invalid_argument("--threads must be at least 1, got " + std::to_string(t));
  openblas_set_num_threads(t);
  omp_set_num_threads(t);
}

int threads() {
  return omp_get_max_threads();
}

}  // namespace parafine
