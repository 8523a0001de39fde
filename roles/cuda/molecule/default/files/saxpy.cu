// A real kernel plus host code: compiling it needs nvcc, cicc, ptxas, fatbinary, the CUDA headers and the
// host g++; linking it needs libcudart_static. Running it without a GPU reaches the CUDA runtime, which
// reports that there is no usable driver.
#include <cstdio>
#include <cuda_runtime.h>

__global__ void saxpy(int n, float a, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

int main() {
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) {
    std::printf("cuda runtime %d: %s\n", CUDART_VERSION, cudaGetErrorString(err));
    return 3;
  }
  float *x, *y;
  cudaMalloc(&x, 1024 * sizeof(float));
  cudaMalloc(&y, 1024 * sizeof(float));
  saxpy<<<4, 256>>>(1024, 2.0f, x, y);
  std::printf("devices %d, kernel: %s\n", devices, cudaGetErrorString(cudaDeviceSynchronize()));
  return 0;
}
