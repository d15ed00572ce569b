/*
 * dsm_topo.h - this process's view of the machine for placement: the hwloc topology, whether
 * it describes this machine, the PUs the process may use, the PUs near a network device,
 * and the binding calls. Shared by libdsm (dsm_parallel's threads) and dsmd (its progress
 * thread and its frames).
 *
 * A topology that is not this machine's (HWLOC_SYNTHETIC or HWLOC_XMLFILE set, so that
 * hwloc_topology_is_thissystem() is false) is used for the plan all the same, but the
 * binding calls then do nothing. HWLOC_THISSYSTEM=1 is hwloc's own way to assert that such
 * a topology is this machine's; it is honoured (the benchmarks use it to bind by a
 * synthetic topology whose PU numbers exist here).
 */
#ifndef DSM_TOPO_H
#define DSM_TOPO_H

#include <hwloc.h>
#include <stdbool.h>
#include <stddef.h>

#include "dsm_status.h"

struct dsm_topo {
    hwloc_topology_t topo;
    bool           thissystem; /* binding applies */
    hwloc_bitmap_t usable;     /* allowed PUs, and on this machine those of the process's CPU mask */
    hwloc_bitmap_t near;       /* PUs of the NUMA domain nearest the device; NULL: none known */
    char           where[160]; /* how the daemon's domain is chosen, for the report */
    char           source[160];/* where a foreign topology came from, for the note */
};

/*
 * Load the topology (with I/O devices when `netdev` is not NULL) and find the device's
 * domain. `transport`/`listen` only word the report when there is no device. Returns 0,
 * or DSM_ESYS (logged) when hwloc cannot load a topology.
 */
dsm_status_t dsm_topo_load(struct dsm_topo *t, const char *netdev, const char *transport, const char *listen);
void dsm_topo_fini(struct dsm_topo *t);

/*
 * The PUs near network or RDMA device `name` ("eth0", "mlx5_0", "rxe0") into `out`: the
 * cpuset of its nearest non-I/O ancestor in the topology (loaded with I/O devices), else,
 * on this machine, what sysfs says (/sys/class/{net,infiniband}/NAME/device/local_cpus).
 * Returns 0, or DSM_EINVAL when the device is unknown or has no locality.
 */
dsm_status_t dsm_topo_device_cpuset(hwloc_topology_t topo, bool thissystem, const char *name, hwloc_bitmap_t out);

/* The cpuset of the NUMA domain nearest `set` (the first one it meets) into out; DSM_EINVAL if none. */
dsm_status_t dsm_topo_nearest_domain(hwloc_topology_t topo, hwloc_const_cpuset_t set, hwloc_bitmap_t out);

/* Bind the calling thread to PU `pu` (OS number). Nothing when not this machine. 0 or DSM_ESYS (not logged). */
dsm_status_t dsm_topo_bind_thread(const struct dsm_topo *t, int pu);
/* Save the calling thread's CPU binding into `set` / set it back. 0 or DSM_ESYS (not logged). */
dsm_status_t dsm_topo_get_thread(const struct dsm_topo *t, hwloc_bitmap_t set);
dsm_status_t dsm_topo_set_thread(const struct dsm_topo *t, hwloc_const_bitmap_t set);

/*
 * Give [addr, addr+len) the first-touch memory policy (hwloc_set_area_membind,
 * HWLOC_MEMBIND_FIRSTTOUCH, which hwloc 2.9 makes mbind(MPOL_LOCAL): /proc/PID/numa_maps
 * shows "local"). On a shared mapping of a memfd the policy belongs to the memory object,
 * not to this mapping, so it holds in every process that maps the frames: each page is
 * allocated when a thread of any process first touches it, on that thread's NUMA domain,
 * whatever memory policy the thread has otherwise (numactl's included). Nothing when not
 * this machine. 0 or DSM_ESYS (not logged).
 */
dsm_status_t dsm_topo_firsttouch(const struct dsm_topo *t, void *addr, size_t len);

#endif
