// sum[0] = the sum of x: each block sums its part in shared memory, then
// adds it to the total once.
extern "C" __global__ void sum(const float *x, float *sum, unsigned int n) {
    __shared__ float part[256];
    unsigned int t = threadIdx.x;
    float acc = 0.0f;
    for (unsigned int i = blockIdx.x * blockDim.x + t; i < n; i += gridDim.x * blockDim.x) {
        acc += x[i];
    }
    part[t] = acc;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) {
            part[t] += part[t + s];
        }
        __syncthreads();
    }
    if (t == 0) {
        atomicAdd(sum, part[0]);
    }
}
