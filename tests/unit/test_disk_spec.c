/* Unit tests for storage/lib/disk_spec.c (disk URLs and options). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/lib/disk_spec.h"

static int parse_line(const char *line, struct disk_spec *s, const char **why)
{
	static char buf[1024];
	char *argv[16];
	int argc = 0;

	strcpy(buf, line);
	for (char *t = strtok(buf, " "); t && argc < 16; t = strtok(NULL, " "))
		argv[argc++] = t;
	return disk_spec_parse(argc, argv, s, why);
}

Test(disk_spec, full)
{
	struct disk_spec s;
	const char *why = NULL;
	char url[300];

	cr_assert_eq(parse_line("data-1 iscsi://10.77.0.254:3261/iqn.2026-11.lab:disk1/7 "
				"chap=alice:alicesecret12 mutual=tgt:targetsecret12 digest=crc32c",
				&s, &why), 0, "%s", why);
	cr_expect_str_eq(s.name, "data-1");
	cr_expect_eq(s.addr, 0x0a4d00feu);
	cr_expect_eq(s.port, 3261);
	cr_expect_str_eq(s.iqn, "iqn.2026-11.lab:disk1");
	cr_expect_eq(s.lun, 7);
	cr_expect(s.chap && s.mutual && s.header_digest && s.data_digest);
	cr_expect_str_eq(s.chap_user, "alice");
	cr_expect_str_eq(s.chap_secret, "alicesecret12");
	cr_expect_str_eq(s.mutual_user, "tgt");
	cr_expect_str_eq(s.mutual_secret, "targetsecret12");
	disk_spec_url(&s, url, sizeof(url));
	cr_expect_str_eq(url, "iscsi://10.77.0.254:3261/iqn.2026-11.lab:disk1/7");
}

Test(disk_spec, defaults)
{
	struct disk_spec s;

	cr_assert_eq(parse_line("d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/0", &s, NULL), 0);
	cr_expect_eq(s.port, 3260);
	cr_expect(!s.chap && !s.mutual && !s.header_digest && !s.data_digest);
	cr_assert_eq(parse_line("d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 digest=header", &s,
				NULL), 0);
	cr_expect(s.header_digest && !s.data_digest);
	cr_assert_eq(parse_line("d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 digest=data", &s,
				NULL), 0);
	cr_expect(!s.header_digest && s.data_digest);
}

/* Every bad line is refused with a reason, and no reason quotes a secret. */
Test(disk_spec, refused)
{
	static const char *const bad[] = {
		"d0",
		"0d iscsi://10.0.0.1/iqn.2026-11.lab:x/1",
		"Disk iscsi://10.0.0.1/iqn.2026-11.lab:x/1",
		"averyveryverylongname iscsi://10.0.0.1/iqn.2026-11.lab:x/1",
		"d0 http://10.0.0.1/iqn.2026-11.lab:x/1",
		"d0 iscsi://10.0.0.1",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x",
		"d0 iscsi:///iqn.2026-11.lab:x/1",
		"d0 iscsi://host.example/iqn.2026-11.lab:x/1",
		"d0 iscsi://10.0.0.256/iqn.2026-11.lab:x/1",
		"d0 iscsi://10.0.0.1:0/iqn.2026-11.lab:x/1",
		"d0 iscsi://10.0.0.1:65536/iqn.2026-11.lab:x/1",
		"d0 iscsi://10.0.0.1:32a/iqn.2026-11.lab:x/1",
		"d0 iscsi://10.0.0.1//1",
		"d0 iscsi://10.0.0.1/not-an-iqn/1",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/16384",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/01",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/-1",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1x",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 chap=nocolonsecret",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 chap=:secret",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 chap=user:",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 mutual=tgt:topsecret",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 digest=md5",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 speed=fast",
		"d0 iscsi://10.0.0.1/iqn.2026-11.lab:x/1 chap",
	};
	struct disk_spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		cr_expect_eq(parse_line(bad[i], &s, &why), -EINVAL, "accepted: %s", bad[i]);
		cr_expect(why && *why, "no reason for: %s", bad[i]);
		cr_expect(!why || (!strstr(why, "topsecret") && !strstr(why, "nocolon")),
			  "a reason quotes the secret: %s", why);
	}
}

/* Random bytes never crash the parser and never give a name outside the rules. */
Test(disk_spec, fuzz)
{
	struct disk_spec s;
	char url[128], opt[48], name[20], *argv[3] = { name, url, opt };

	srand(7);
	for (int n = 0; n < 20000; n++) {
		const char *alpha = "iscsi:/.0123456789abqn-:=x";
		size_t ul = (size_t)rand() % (sizeof(url) - 1);

		strcpy(url, "iscsi://10.0.0.1/");
		for (size_t i = strlen(url); i < ul; i++)
			url[i] = (rand() & 3) ? alpha[rand() % 26] : (char)(rand() % 255 + 1);
		url[ul > strlen("iscsi://10.0.0.1/") ? ul : strlen(url)] = '\0';
		for (size_t i = 0; i < sizeof(opt) - 1; i++)
			opt[i] = alpha[rand() % 26];
		opt[rand() % sizeof(opt)] = '\0';
		snprintf(name, sizeof(name), "d%d", rand() % 100);
		if (disk_spec_parse(3, argv, &s, NULL) == 0) {
			cr_assert_eq(disk_name_check(s.name), 0);
			cr_assert(s.lun <= DISK_LUN_MAX);
			cr_assert(s.port != 0);
		}
	}
}
