# patchtwin's patch supervisor, run inside the twin (perl-base is in every Debian/Ubuntu).
#
#   perl supervise.pl LIMIT_S STATUS_FILE ARGV...
#
# Runs ARGV in a new session (its own process group), kills that whole group and every
# process left in the session at LIMIT_S, and writes how it ended to STATUS_FILE as one
# JSON line: exit code or signal (from the raw wait status, so `exit 137` and a SIGKILL
# differ), whether the deadline killed it, the OOM kills the twin's memory cgroup counted
# meanwhile, and the duration. Its own stdout/stderr are the patch's: it prints nothing.
use strict;
use warnings;
use POSIX ();
# Only perl-base modules: Time::HiRes is not there, so the clock is /proc/uptime (10 ms).

my ($limit, $status_path, @cmd) = @ARGV;
die "usage: supervise.pl LIMIT_S STATUS_FILE ARGV...\n" unless defined $status_path && @cmd;

sub clock {
    if (open(my $fh, '<', '/proc/uptime')) { my $line = <$fh>; return $1 + 0 if $line =~ /^([\d.]+)/ }
    return time;
}

sub nap { select(undef, undef, undef, $_[0]) }

sub oom_kills {
    # cgroup v2 first (memory.events of the twin's own cgroup), then v1 (memory.oom_control).
    for my $file ('/sys/fs/cgroup/memory.events', '/sys/fs/cgroup/memory/memory.oom_control') {
        open(my $fh, '<', $file) or next;
        while (my $line = <$fh>) { return $1 + 0 if $line =~ /^oom_kill (\d+)/ }
    }
    return -1;
}

sub session_members {
    my ($sid) = @_;
    my @found;
    opendir(my $dh, '/proc') or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open(my $fh, '<', "/proc/$pid/stat") or next;
        my $stat = <$fh> // next;
        # pid (comm) state ppid pgrp session ... ; comm may hold spaces and parentheses
        my ($after) = $stat =~ /\)\s(.*)$/s or next;
        my ($state, undef, $pgrp, $session) = split /\s+/, $after;
        next if $state eq 'Z' || $state eq 'X';    # already dead, waiting to be reaped
        push @found, $pid if $session == $sid || $pgrp == $sid;
    }
    return @found;
}

sub kill_all {
    my ($leader) = @_;
    kill 'KILL', -$leader;
    kill 'KILL', $leader;
    for (1 .. 100) {    # members may fork while we look: sweep until a scan finds none
        my @left = grep { $_ != $$ } session_members($leader);
        last unless @left;
        kill 'KILL', @left;
        nap(0.01);
    }
}

my $oom_before = oom_kills();
my $started = clock();
my $pid = fork();
die "patchtwin supervisor: fork: $!\n" unless defined $pid;
if ($pid == 0) {
    POSIX::setsid();
    { no warnings 'exec'; exec { $cmd[0] } @cmd; }
    print STDERR "patchtwin: cannot run $cmd[0]: $!\n";
    POSIX::_exit(127);
}

# Poll rather than alarm: a 20 ms tick costs nothing and needs no signal handling.
my ($timed_out, $status) = (0, 0);
while (1) {
    my $reaped = waitpid($pid, POSIX::WNOHANG());
    if ($reaped == $pid) { $status = $?; last }
    if ($reaped == -1 && !$!{EINTR}) { last }
    if (!$timed_out && clock() - $started >= $limit) {
        $timed_out = 1;
        kill_all($pid);
        next;
    }
    nap(0.02);
}
kill_all($pid) if $timed_out;    # once more: whatever the group left behind when it died
my $duration = clock() - $started;
my $oom_after = oom_kills();

my ($exit, $signal) = ('null', 'null');
if (POSIX::WIFSIGNALED($status)) { $signal = POSIX::WTERMSIG($status) }
else { $exit = POSIX::WEXITSTATUS($status) }
my $oom = ($oom_before < 0 || $oom_after < 0) ? 'null' : $oom_after - $oom_before;

open(my $out, '>', "$status_path.tmp") or die "patchtwin supervisor: $status_path: $!\n";
printf $out '{"exit_code":%s,"signal":%s,"timed_out":%s,"oom_kills":%s,"duration_s":%.3f}' . "\n",
    $exit, $signal, ($timed_out ? 'true' : 'false'), $oom, $duration;
close $out;
rename "$status_path.tmp", $status_path;
exit(($signal ne 'null') ? 128 + $signal : $exit);
