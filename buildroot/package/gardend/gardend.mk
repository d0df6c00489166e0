################################################################################
#
# gardend
#
################################################################################

# Built from this checkout. Buildroot builds Go packages offline
# (-mod=vendor, GOPROXY=off): run `make vendor` in the checkout first, or
# point GARDEND_OVERRIDE_SRCDIR at a tree from `make dist`.
GARDEND_VERSION = 0.1.0
GARDEND_SITE = $(BR2_EXTERNAL_GARDEND_PATH)/..
GARDEND_SITE_METHOD = local
GARDEND_LICENSE_FILES = LICENSE THIRD_PARTY_LICENSES
GARDEND_GOMOD = gardend
GARDEND_BUILD_TARGETS = cmd/gardend
GARDEND_LDFLAGS = -s -w -X main.version=$(GARDEND_VERSION)

ifeq ($(BR2_PACKAGE_GARDEND_PKCS11),y)
GARDEND_TAGS = pkcs11
GARDEND_GO_ENV = CGO_ENABLED=1
else
GARDEND_GO_ENV = CGO_ENABLED=0
endif

define GARDEND_CHECK_VENDOR
	@test -d $(@D)/vendor || { \
		echo "gardend: no vendor/ directory: run 'make vendor' in the gardend checkout"; \
		exit 1; }
endef
GARDEND_PRE_BUILD_HOOKS += GARDEND_CHECK_VENDOR

define GARDEND_INSTALL_CONFIG
	$(INSTALL) -D -m 0640 $(GARDEND_PKGDIR)/gardend.toml \
		$(TARGET_DIR)/etc/gardend/gardend.toml
endef
GARDEND_POST_INSTALL_TARGET_HOOKS += GARDEND_INSTALL_CONFIG

ifeq ($(BR2_PACKAGE_GARDEND_RADIO_SYSCTL),y)
define GARDEND_INSTALL_RADIO_SYSCTL
	$(INSTALL) -D -m 0644 $(@D)/systemd/60-gardend-radio.conf \
		$(TARGET_DIR)/usr/lib/sysctl.d/60-gardend-radio.conf
endef
GARDEND_POST_INSTALL_TARGET_HOOKS += GARDEND_INSTALL_RADIO_SYSCTL
endif

define GARDEND_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/gardend.service \
		$(TARGET_DIR)/usr/lib/systemd/system/gardend.service
endef

define GARDEND_USERS
	gardend -1 gardend -1 * /var/lib/gardend - - gardend daemon
endef

define GARDEND_PERMISSIONS
	/etc/gardend d 750 root gardend - - - - -
	/etc/gardend/gardend.toml f 640 root gardend - - - - -
endef

$(eval $(golang-package))

# Set after golang-package, which appends "vendored dependencies licenses
# probably not listed" to a licence set before it: this one names every
# module linked into the binary (checked by go test ./scripts/licenses/),
# their texts in THIRD_PARTY_LICENSES (hashes in gardend.hash).
GARDEND_LICENSE = Apache-2.0 (gardend), Apache-2.0, BSD-3-Clause, MIT, MPL-2.0 (vendored Go modules)
