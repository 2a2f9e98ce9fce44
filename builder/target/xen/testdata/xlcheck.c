/*
 * xlcheck reads an xl domain config with Xen's own parser (libxlutil, the
 * code xl create runs) and prints what xl would take from it. xl itself
 * cannot run without a hypervisor; its parser can. Built by xen_test.go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <libxl.h>
#include <libxlutil.h>

static int str(XLU_Config *cfg, const char *key, const char **out) {
	if (xlu_cfg_get_string(cfg, key, out, 0)) {
		fprintf(stderr, "missing or not a string: %s\n", key);
		return 1;
	}
	printf("%s=%s\n", key, *out);
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: xlcheck FILE\n");
		return 2;
	}
	XLU_Config *cfg = xlu_cfg_init(stderr, argv[1]);
	if (!cfg || xlu_cfg_readfile(cfg, argv[1])) {
		fprintf(stderr, "%s: parse failed\n", argv[1]);
		return 1;
	}
	const char *s;
	long l;
	libxl_domain_type type;
	if (str(cfg, "name", &s) || str(cfg, "kernel", &s) || str(cfg, "type", &s))
		return 1;
	if (libxl_domain_type_from_string(s, &type) || type == LIBXL_DOMAIN_TYPE_HVM) {
		fprintf(stderr, "type %s: not pv or pvh\n", s);
		return 1;
	}
	if (xlu_cfg_get_long(cfg, "memory", &l, 0) || l <= 0) {
		fprintf(stderr, "memory\n");
		return 1;
	}
	printf("memory=%ld\n", l);
	if (xlu_cfg_get_long(cfg, "vcpus", &l, 0) || l <= 0) {
		fprintf(stderr, "vcpus\n");
		return 1;
	}
	printf("vcpus=%ld\n", l);
	const char *actions[] = {"on_poweroff", "on_reboot", "on_crash"};
	for (int i = 0; i < 3; i++) {
		libxl_action_on_shutdown a;
		if (str(cfg, actions[i], &s) || libxl_action_on_shutdown_from_string(s, &a)) {
			fprintf(stderr, "%s: bad action\n", actions[i]);
			return 1;
		}
	}
	XLU_ConfigList *list;
	int n;
	if (xlu_cfg_get_list(cfg, "disk", &list, &n, 0)) {
		fprintf(stderr, "no disk list\n");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		const char *spec = xlu_cfg_get_listitem(list, i);
		libxl_device_disk d;
		libxl_device_disk_init(&d);
		if (xlu_disk_parse(cfg, 1, &spec, &d)) {
			fprintf(stderr, "bad disk spec: %s\n", spec);
			return 1;
		}
		printf("disk vdev=%s format=%s rw=%d target=%s\n", d.vdev,
		       libxl_disk_format_to_string(d.format), d.readwrite, d.pdev_path);
		libxl_device_disk_dispose(&d);
	}
	if (xlu_cfg_get_list(cfg, "vif", &list, &n, 0)) {
		fprintf(stderr, "no vif list\n");
		return 1;
	}
	for (int i = 0; i < n; i++)
		printf("vif %s\n", xlu_cfg_get_listitem(list, i));
	xlu_cfg_destroy(cfg);
	return 0;
}
