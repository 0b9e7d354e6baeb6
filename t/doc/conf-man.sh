#!/bin/sh
# SPDX-License-Identifier: MIT
# The section 5 man pages against the daemons' schema tables: every key a
# daemon accepts has an entry ".BR key \" (type)\"" in its page, with the
# type (and integer range) the table enforces, a default (or "Required."
# when the table requires it) and an example; the page names no key the
# daemon does not take. *_options groups go with their URI key. Defaults
# that are values (numbers, booleans, choices; not paths or words) must
# be what the daemons print with -t.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
# The defaults too, from what the built daemons print with -t (each key,
# "# default" where the file leaves it out), when they are built.
eff=$(mktemp -d /tmp/epsec-confman.XXXXXX)
trap 'rm -rf "$eff"' EXIT
export EPSEC_PLUGIN_PATH="$top_builddir/transports:$top_builddir/plugins"
printf 'mux = "unix://%s/m.sock";\nprotect = [ "/tmp" ];\n' "$eff" >"$eff/vsep.conf"
printf 'agents = [ "unix://%s/a.sock" ];\nsvas = [ "unix://%s/s.sock" ];\n' "$eff" "$eff" >"$eff/mux.conf"
printf 'mux = "unix://%s/s.sock";\nengine = ( { plugin = "eicar"; action = "deny"; } );\n' "$eff" >"$eff/sva.conf"
for d in agent/vsep:vsep mux/epsec-mux:mux sva/epsec-sva:sva; do
	bin=$top_builddir/${d%%:*}
	[ -x "$bin" ] && "$bin" -t -c "$eff/${d##*:}.conf" >"$eff/${d##*:}.t" 2>/dev/null
done
perl -w - "$top_srcdir" "$eff" <<'PERL'
use strict;
my $top = shift;
my $eff = shift;
sub slurp { my $f = shift; open(my $h, '<', $f) or die "$f: $!\n"; local $/; <$h> }

my %typename = (INT => 'integer', BOOL => 'boolean', STRING => 'string', URI => 'URI',
	CHOICE => 'one of', STRLIST => 'list of strings', URILIST => 'list of URIs',
	GROUP => 'group', LIST => 'list of groups', SIZE => 'size',
	INTLIST => 'list of integers');

# Integer bounds as written in C: 1 << 20, 4294967294L, a #define of the file.
sub num {
	my ($e, $src) = @_;
	$e =~ s/^\s+|\s+$//g;
	$e =~ s/\b(\d+)[uUlL]+\b/$1/g;
	$e =~ s/\b([A-Z_][A-Z0-9_]*)\b/$src =~ m{#define\s+$1\s+(\S+)} ? $1 : die "unknown $1\n"/ge;
	die "cannot read bound '$e'\n" unless $e =~ /^[\d\s<()+*-]+$/;
	return eval $e;
}

# name => [type, required, lo, hi], from one schema[] table.
sub schema {
	my $file = shift;
	my $src = slurp("$top/$file");
	my ($tab) = $src =~ /\bschema\[\]\s*=\s*\{(.*?)\n\};/s or die "$file: no schema[] table\n";
	my (%k, @order);
	my $add = sub { my ($n, @v) = @_; $k{$n} = [@v]; push @order, $n; };
	if ($tab =~ /EPSEC_DAEMON_SETTINGS_KEYS/) {
		my $h = slurp("$top/libcore/daemon.h");
		while ($h =~ /\{\s*"(\w+)",\s*EPSEC_CONF_(\w+),\s*(true|false),\s*offsetof\([^)]*\),\s*([^,]+),\s*([^,]+),\s*NULL\s*\}/g) {
			$add->($1, $2, $3 eq 'true', num($4, $h), num($5, $h));
		}
	}
	while ($tab =~ /\bKEY\("(\w+)",\s*EPSEC_CONF_(\w+),\s*(true|false),\s*[\w.]+,\s*([^,]+),\s*([^)]+)\)/g) {
		$add->($1, $2, $3 eq 'true', num($4, $src), num($5, $src));
	}
	while ($tab =~ /\bCHOICE\("(\w+)"/g) { $add->($1, 'CHOICE', 0, 0, 0); }
	while ($tab =~ /\{\s*\.name\s*=\s*"(\w+)"(.*?)\}/sg) {
		my ($n, $rest) = ($1, $2);
		my ($t) = $rest =~ /\.type\s*=\s*EPSEC_CONF_(\w+)/ or die "$file: $n: no type\n";
		my ($lo) = $rest =~ /\.min\s*=\s*([^,}]+)/;
		my ($hi) = $rest =~ /\.max\s*=\s*([^,}]+)/;
		$add->($n, $t, $rest =~ /\.required\s*=\s*true/ ? 1 : 0,
			defined $lo ? num($lo, $src) : 0, defined $hi ? num($hi, $src) : 0);
	}
	die "$file: no keys found in schema[]\n" unless @order;
	return \%k;
}

# key => value of the keys `-t` printed as defaults (none when not built).
sub defaults_of {
	my $f = shift;
	my %d;
	open(my $h, '<', $f) or return \%d;
	while (<$h>) { $d{$1} = $2 if /^(\w+) = (.*);  # default$/; }
	return \%d;
}

# The page's "Default: X." as the value would be written, or undef where
# it is words (\(dqsva-\(dq and the host name) or a path (prefixes differ).
sub page_default {
	my $text = shift;
	my ($v) = $text =~ /^Default: (.*)\.$/m or return undef;
	$v =~ s/\\\(dq/"/g;
	$v =~ s/\\f[BIR]//g;
	return undef if $v =~ m{/| } || $v eq 'none' || $v eq 'unset';
	return $v;
}

my $bad = 0;
my $n = 0;
my $nd = 0;
sub fail { print "not ok - $_[0]\n"; $bad++; }
for (['agent/main.c', 'doc/vsep.conf.5', 'vsep'], ['mux/main.c', 'doc/epsec-mux.conf.5', 'mux'],
     ['sva/main.c', 'doc/epsec-sva.conf.5', 'sva']) {
	my ($src, $man, $d) = @$_;
	my $k = schema($src);
	my $dflt = defaults_of("$eff/$d.t");
	my $page = slurp("$top/$man");
	my %entry;
	for my $block (split /^\.TP\n/m, (split /^\.SH KEYS\n/m, $page)[1] // '') {
		$block =~ s/^\.SH .*//ms;
		next unless $block =~ /^\.BR (\w+) " \(([^)]*)\)"\n/;
		$entry{$1} = [$2, $block];
	}
	fail("$man: no entries under .SH KEYS") unless %entry;
	for my $name (sort keys %$k) {
		my ($t, $req, $lo, $hi) = @{$k->{$name}};
		my $want = $typename{$t} // die "$src: $name: type $t unknown to this check\n";
		$want .= ", $lo to $hi" if $t eq 'INT' || $t eq 'INTLIST';
		my $e = $entry{$name};
		if (!$e) { fail("$man: no entry for $name ($src takes it)"); next; }
		my ($type, $text) = @$e;
		if ($t eq 'CHOICE' ? $type !~ /^one of / : $type ne $want) {
			fail("$man: $name: type \"$type\", the table says \"$want\"");
		}
		fail("$man: $name: the table requires it, the page does not say \"Required.\"")
			if $req && $text !~ /^Required\.$/m;
		fail("$man: $name: no \"Default:\"") if !$req && $text !~ /^Default:/m;
		fail("$man: $name: no \"Example:\"") if $text !~ /^Example:/m;
		my ($pv, $dv) = (page_default($text), $dflt->{$name});
		if (defined $pv && defined $dv && $t ne 'SIZE') {
			$dv =~ s/^(-?\d+)L$/$1/;
			if ($pv ne $dv) {
				fail("$man: $name: the page says default $pv, $d -t says $dv");
			} else {
				$nd++;
			}
		}
		$n++;
	}
	for my $name (sort keys %entry) {
		next if $k->{$name};
		(my $base = $name) =~ s/_options$//;
		next if $name ne $base && $k->{$base} && $k->{$base}[0] =~ /^URI/ &&
			$entry{$name}[0] eq 'group';
		fail("$man: $name is documented but $src does not take it");
	}
}
print $bad ? "$bad problem(s)\n" :
	"ok - $n keys documented with their type, default and example ($nd defaults as the daemons print them)\n";
exit($bad ? 1 : 0);
PERL
