# The first step's padding in each generate call of the GRPO step (prompt-lengths.txt: the
# shared prefix's length and each distinct prompt's length, printed by a temporary probe in
# generate_with, not kept), and the best split of each call's rows, longest first, into groups
# of similar length fed apart (each extra group costed as OVERHEAD positions, argv[1]).
# Usage: python3 padding_groups.py [OVERHEAD]
import re,sys
OVER=int(sys.argv[1]) if len(sys.argv)>1 else 48
tot_now=tot_best=0
for line in open('prompt-lengths.txt'):
    m=re.match(r"PROBE skip (\d+) lens \[(.*)\]",line)
    P=int(m.group(1)); L=sorted(map(int,m.group(2).split(', ')),reverse=True)
    W=L[0]; n=len(L)
    pad=[W-l for l in L]
    now=n*(W-P)
    # groups are contiguous in sorted order; group i..j-1 cost = (j-i)*(W - min(pad_i+P, W-1))
    INF=10**18; best=[INF]*(n+1); best[0]=0; cut=[0]*(n+1)
    for j in range(1,n+1):
        for i in range(j):
            c0=min(pad[i]+P,W-1)
            c=best[i]+(j-i)*(W-c0)+(OVER if i>0 else 0)
            if c<best[j]: best[j]=c; cut[j]=i
    g=[];j=n
    while j>0: g.append(j-cut[j]); j=cut[j]
    real=sum(l-P for l in L)
    print(f"P {P} now {now} best {best[n]} (incl overhead) real {real} groups {g[::-1]}")
    tot_now+=now; tot_best+=best[n]
print("total now",tot_now,"best",tot_best)
