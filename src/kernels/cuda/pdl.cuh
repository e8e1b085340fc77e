/*
 * pdl.cuh - programmatic dependent launch (PDL, sm_90+) helpers shared by the CUDA kernels.
 *
 * A kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization may start while the previous
 * kernel of the stream still runs. Such a kernel calls pdl_wait() (griddepcontrol.wait: returns once the
 * previous kernel has completed and its memory is visible) before it reads anything an earlier kernel
 * wrote and before it writes anything; pdl_launch_dependents() lets the next kernel start early. Since
 * every PDL kernel waits, all earlier kernels are complete once pdl_wait() returns. Both are no-ops below
 * sm_90 and in kernels launched without the attribute.
 */
#ifndef EL_CUDA_PDL_CUH
#define EL_CUDA_PDL_CUH

#include <cuda_runtime.h>

static __device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
static __device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* A launch configuration: programmatic stream serialization when pdl, thread block clusters of `cluster` blocks
 * along x when cluster > 1 (sm_90+); `at` holds the attributes and must outlive the launch. */
static inline void elk_launch_cfg(cudaLaunchConfig_t &cfg, cudaLaunchAttribute (&at)[2], dim3 grid, dim3 block,
                                  size_t smem, cudaStream_t st, bool pdl, unsigned cluster) {
    cfg = cudaLaunchConfig_t{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    at[0] = at[1] = cudaLaunchAttribute{};
    unsigned na = 0;
    if (pdl) {
        at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[na++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 1) {
        at[na].id = cudaLaunchAttributeClusterDimension;
        at[na].val.clusterDim.x = cluster, at[na].val.clusterDim.y = 1, at[na++].val.clusterDim.z = 1;
    }
    cfg.attrs = at;
    cfg.numAttrs = na;
}

/* kern<<<grid, block, smem, st>>>(args...), with programmatic stream serialization when pdl. */
template <typename... KArgs, typename... Args>
static cudaError_t elk_launch_ex(void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                                 bool pdl, Args... args) {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[2];
    elk_launch_cfg(cfg, at, grid, block, smem, st, pdl, 1);
    return cudaLaunchKernelEx(&cfg, kern, args...);
}

#endif
