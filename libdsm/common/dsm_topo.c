/* dsm_topo.c - this process's view of the machine for placement; see dsm_topo.h. */
#include "dsm_topo.h"

#include <hwloc/linux.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"

dsm_status_t dsm_topo_nearest_domain(hwloc_topology_t topo, hwloc_const_cpuset_t set, hwloc_bitmap_t out)
{
    hwloc_obj_t n = NULL;

    while ((n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) != NULL) {
        if (n->cpuset != NULL && hwloc_bitmap_intersects(n->cpuset, set)) {
            hwloc_bitmap_copy(out, n->cpuset);
            return 0;
        }
    }
    return DSM_EINVAL;
}

/* The device's locality from sysfs (this machine only). */
static dsm_status_t device_sysfs(const char *name, hwloc_bitmap_t out)
{
    static const char *const classes[] = { "net", "infiniband" };
    char path[256];

    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (snprintf(path, sizeof(path), "/sys/class/%s/%s/device/local_cpus", classes[i], name) >=
            (int)sizeof(path))
            return DSM_EINVAL;
        if (hwloc_linux_read_path_as_cpumask(path, out) == 0 && !hwloc_bitmap_iszero(out))
            return 0;
    }
    return DSM_EINVAL;
}

dsm_status_t dsm_topo_device_cpuset(hwloc_topology_t topo, bool thissystem, const char *name, hwloc_bitmap_t out)
{
    hwloc_obj_t o = NULL;

    while ((o = hwloc_get_next_osdev(topo, o)) != NULL) {
        hwloc_obj_t anc;

        if (o->name == NULL || strcmp(o->name, name) != 0)
            continue;
        anc = hwloc_get_non_io_ancestor_obj(topo, o);
        if (anc != NULL && anc->cpuset != NULL && !hwloc_bitmap_iszero(anc->cpuset)) {
            hwloc_bitmap_copy(out, anc->cpuset);
            return 0;
        }
    }
    return thissystem ? device_sysfs(name, out) : DSM_EINVAL;
}

/* Name the variable that made the topology foreign, for the note. */
static void foreign_source(struct dsm_topo *t)
{
    static const char *const vars[] = { "HWLOC_SYNTHETIC", "HWLOC_XMLFILE", "HWLOC_FSROOT" };

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);

        if (v != NULL && *v != '\0') {
            snprintf(t->source, sizeof(t->source), "%s=%s", vars[i], v);
            return;
        }
    }
    snprintf(t->source, sizeof(t->source), "hwloc says it is not this system's");
}

/* usable = allowed PUs, narrowed to the process's CPU mask on this machine. */
static void find_usable(struct dsm_topo *t)
{
    hwloc_bitmap_t mask = hwloc_bitmap_alloc();

    hwloc_bitmap_copy(t->usable, hwloc_topology_get_allowed_cpuset(t->topo));
    if (t->thissystem && mask != NULL && hwloc_get_cpubind(t->topo, mask, HWLOC_CPUBIND_THREAD) == 0 &&
        hwloc_bitmap_intersects(mask, t->usable))
        hwloc_bitmap_and(t->usable, t->usable, mask);
    hwloc_bitmap_free(mask);
}

/* t->near and t->where from the device, if any. */
static void find_near(struct dsm_topo *t, const char *netdev, const char *transport, const char *listen)
{
    hwloc_bitmap_t dev;

    if (netdev == NULL) {
        snprintf(t->where, sizeof(t->where), "no network device (%s on %s)", transport ? transport : "tcp",
                 listen ? listen : "127.0.0.1");
        return;
    }
    dev = hwloc_bitmap_alloc();
    t->near = hwloc_bitmap_alloc();
    if (dev == NULL || t->near == NULL || dsm_topo_device_cpuset(t->topo, t->thissystem, netdev, dev) != 0 ||
        dsm_topo_nearest_domain(t->topo, dev, t->near) != 0) {
        snprintf(t->where, sizeof(t->where), "device %s not found in the topology", netdev);
        hwloc_bitmap_free(t->near);
        t->near = NULL;
    } else {
        char s[64];

        hwloc_bitmap_list_snprintf(s, sizeof(s), t->near);
        snprintf(t->where, sizeof(t->where), "near %s (pus %s)", netdev, s);
    }
    hwloc_bitmap_free(dev);
}

dsm_status_t dsm_topo_load(struct dsm_topo *t, const char *netdev, const char *transport, const char *listen)
{
    memset(t, 0, sizeof(*t));
    if (hwloc_topology_init(&t->topo) != 0) {
        DSM_ERR("hwloc_topology_init failed");
        t->topo = NULL;
        return DSM_ESYS;
    }
    if (netdev != NULL)
        hwloc_topology_set_io_types_filter(t->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(t->topo) != 0) {
        DSM_ERR("hwloc cannot load the machine's topology");
        hwloc_topology_destroy(t->topo);
        t->topo = NULL;
        return DSM_ESYS;
    }
    t->thissystem = hwloc_topology_is_thissystem(t->topo) != 0;
    if (!t->thissystem)
        foreign_source(t);
    t->usable = hwloc_bitmap_alloc();
    if (t->usable == NULL) {
        dsm_topo_fini(t);
        return DSM_ENOMEM;
    }
    find_usable(t);
    find_near(t, netdev, transport, listen);
    return 0;
}

void dsm_topo_fini(struct dsm_topo *t)
{
    if (t->near)
        hwloc_bitmap_free(t->near);
    if (t->usable)
        hwloc_bitmap_free(t->usable);
    if (t->topo)
        hwloc_topology_destroy(t->topo);
    memset(t, 0, sizeof(*t));
}

dsm_status_t dsm_topo_bind_thread(const struct dsm_topo *t, int pu)
{
    hwloc_bitmap_t set;
    int rc;

    if (!t->thissystem || pu < 0)
        return 0;
    set = hwloc_bitmap_alloc();
    if (set == NULL)
        return DSM_ENOMEM;
    hwloc_bitmap_only(set, (unsigned)pu);
    rc = hwloc_set_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(set);
    return rc == 0 ? 0 : DSM_ESYS;
}

dsm_status_t dsm_topo_get_thread(const struct dsm_topo *t, hwloc_bitmap_t set)
{
    if (!t->thissystem)
        return 0;
    return hwloc_get_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD) == 0 ? 0 : DSM_ESYS;
}

dsm_status_t dsm_topo_set_thread(const struct dsm_topo *t, hwloc_const_bitmap_t set)
{
    if (!t->thissystem || hwloc_bitmap_iszero(set))
        return 0;
    return hwloc_set_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD) == 0 ? 0 : DSM_ESYS;
}

dsm_status_t dsm_topo_firsttouch(const struct dsm_topo *t, void *addr, size_t len)
{
    if (!t->thissystem)
        return 0;
    return hwloc_set_area_membind(t->topo, addr, len, hwloc_topology_get_complete_nodeset(t->topo),
                                  HWLOC_MEMBIND_FIRSTTOUCH, HWLOC_MEMBIND_BYNODESET) == 0
               ? 0
               : DSM_ESYS;
}
