SUMMARY = "GB28181 platform and security-camera media gateway"
DESCRIPTION = "camgate registers GB28181 cameras and NVRs as a SIP platform, \
               pulls RTSP cameras, and re-publishes every stream as HTTP-FLV, \
               WebSocket-FLV and LL-HLS from one process with an embedded \
               SQLite database."
HOMEPAGE = "https://example.invalid/camgate"
BUGTRACKER = "https://example.invalid/camgate/issues"
SECTION = "multimedia"
CVE_PRODUCT = "camgate"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=06f46b7d40881152a52701c86863017e \
                    file://LICENSE-APACHE;md5=22a53954e4e0ec258dfce4391e905dac"

# A release pins SRCREV to its tag's commit. To build a local checkout
# instead, use externalsrc (yocto/README.md, kas/camgate-qemuarm64.yml).
PV .= "+git"
SRC_URI = "git://example.invalid/camgate.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"

# scarthgap unpacks into WORKDIR; styhead and later into UNPACKDIR.
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/git"

# Every crate of Cargo.lock, fetched by bitbake; the build itself runs
# offline (do_compile[network] stays "0").
require ${BPN}-crates.inc

inherit cargo systemd useradd

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --groups dialout \
                       --home-dir ${localstatedir}/lib/camgate --no-create-home \
                       --shell ${base_sbindir}/nologin camgate"

SYSTEMD_SERVICE:${PN} = "camgate.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    # The image has a real system user: the dynamic-user unit becomes the
    # fixed-user variant the Debian package ships too.
    install -d ${D}${systemd_system_unitdir}
    sed -e 's/^DynamicUser=yes$/User=camgate\nGroup=camgate/' \
        -e 's#/usr/bin/camgate#${bindir}/camgate#' \
        ${S}/systemd/camgate.service > ${D}${systemd_system_unitdir}/camgate.service
    chmod 0644 ${D}${systemd_system_unitdir}/camgate.service

    install -d ${D}${sysconfdir}/camgate
    install -m 0640 -g camgate ${S}/systemd/camgate.toml ${D}${sysconfdir}/camgate/camgate.toml
}

CONFFILES:${PN} = "${sysconfdir}/camgate/camgate.toml"
FILES:${PN} += "${systemd_system_unitdir}/camgate.service"
