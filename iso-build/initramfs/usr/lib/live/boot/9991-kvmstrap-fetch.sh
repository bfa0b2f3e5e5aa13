#!/bin/sh
# kvmstrap: live-boot's fetch= with retries and a sha256 check before anything is mounted.
#
# live-boot downloads the squashfs of fetch=http://... once, unchecked: a dropped connection or a
# truncated file ends in a panic or a root that fails later. live-boot sources /lib/live/boot/????-*
# in order, so this file (9991, after 9990-mount-http.sh) replaces do_httpmount; an http(s) fetch= of
# a squashfs is done here, everything else (httpfs=, ftpfs=, tftp://, .iso, .tgz) by live-boot's own
# function, kept under another name. iso-build/build.mjs appends it to the initrd as a second cpio.
#
# Kernel command line: kvmstrap.fetch-sha256=HEX (checked when given), kvmstrap.fetch-attempts=N
# (default 6; waits of 2, 4, 8, 16, 30 s between them). Console lines start with KVMSTRAP-FETCH:.

eval "$(sed -e 's/^do_httpmount ()/live_boot_httpmount ()/' /lib/live/boot/9990-mount-http.sh)"

# Where the command line is read (a test points it at a file).
KVMSTRAP_CMDLINE_FILE="${KVMSTRAP_CMDLINE_FILE:-/proc/cmdline}"

kvmstrap_param ()
{
	# The last occurrence wins, as in the kernel and kvmstrap's own parser.
	for _kvms_word in $(cat "${KVMSTRAP_CMDLINE_FILE}")
	do
		case "${_kvms_word}" in
			"${1}="*) _kvms_value="${_kvms_word#*=}" ;;
		esac
	done
	echo "${_kvms_value}"
	unset _kvms_word _kvms_value
}

kvmstrap_say ()
{
	echo "KVMSTRAP-FETCH: $*"
}

kvmstrap_fetch ()
{
	_url="${FETCH}"
	_want="$(kvmstrap_param kvmstrap.fetch-sha256 | tr 'A-F' 'a-f')"
	_attempts="$(kvmstrap_param kvmstrap.fetch-attempts)"
	case "${_attempts}" in
		''|*[!0-9]*|0) _attempts=6 ;;
	esac
	_dest="${mountpoint}/${LIVE_MEDIA_PATH}"
	_file="${_dest}/$(basename "${_url}")"
	mount -t ramfs ram "${mountpoint}"
	mkdir -p "${_dest}"
	_n=1
	_delay=2
	while :
	do
		kvmstrap_say "fetching ${_url} (attempt ${_n}/${_attempts})"
		rm -f "${_file}"
		# No -T: bookworm's busybox wget crashes (SIGSEGV) with it; its built-in read timeout
		# (900 s without data) still ends a stalled transfer, and the next attempt follows.
		if _err="$(wget -q -O "${_file}" "${_url}" 2>&1)"
		then
			if [ -z "${_want}" ]
			then
				kvmstrap_say "fetched $(wc -c < "${_file}") bytes (no kvmstrap.fetch-sha256= to check them against)"
				return 0
			fi
			_got="$(sha256sum "${_file}" | cut -d ' ' -f 1)"
			if [ "${_got}" = "${_want}" ]
			then
				kvmstrap_say "fetched $(wc -c < "${_file}") bytes, sha256 ${_got} as kvmstrap.fetch-sha256= says"
				return 0
			fi
			_err="sha256 ${_got} is not kvmstrap.fetch-sha256=${_want} (a truncated or wrong file)"
		fi
		kvmstrap_say "attempt ${_n}/${_attempts} failed: $(echo "${_err:-wget failed}" | tail -n 1)"
		if [ "${_n}" -ge "${_attempts}" ]
		then
			break
		fi
		sleep "${_delay}"
		_n=$((_n + 1))
		_delay=$((_delay * 2))
		if [ "${_delay}" -gt 30 ]
		then
			_delay=30
		fi
	done
	rm -f "${_file}"
	umount "${mountpoint}"
	kvmstrap_say "FAILED: ${_url} was not fetched intact in ${_attempts} attempts; check that the boot server is up and serves the file of its SHA256SUMS"
	return 1
}

do_httpmount ()
{
	if [ -z "${HTTPFS}" ] && [ -z "${FTPFS}" ]
	then
		case "${FETCH}" in
			http://*.squashfs|https://*.squashfs)
				kvmstrap_fetch
				return $?
				;;
		esac
	fi
	live_boot_httpmount "$@"
}
