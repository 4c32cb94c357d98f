/* The ACPI Generic Event Device: how the host raises events in the guest. */
#ifndef SNAPVM_VMM_HW_GED_H
#define SNAPVM_VMM_HW_GED_H

#include <stdint.h>

struct ged;

/* Sets events (ACPI_GED_EVENT_*) pending and raises the GED's interrupt; any thread. */
void ged_event_raise(struct ged *ged, uint32_t events);

#endif
