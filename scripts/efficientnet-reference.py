"""An independent EfficientNet-Lite0 forward pass in numpy, straight from the safetensors file
and the architecture in weights/README.md, to check the Burn import against.

Usage (needs numpy and Pillow): python3 scripts/efficientnet-reference.py PHOTO_224x224.png ...
Prints, per photo, the cat and dog class sums, the top-5 ImageNet classes and their logits.
"""
import json, os, struct, sys
import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
f=open(os.environ.get('CATDOG_LITE0', os.path.join(here, '..', '..', 'shared', 'weights', 'efficientnet-lite0.safetensors')),'rb'); n=struct.unpack('<Q',f.read(8))[0]; h=json.loads(f.read(n)); data=f.read()
W={}
for k,v in h.items():
    if k=='__metadata__' or v['dtype']!='F32': continue
    a,b=v['data_offsets']; W[k]=np.frombuffer(data[a:b],dtype=np.float32).reshape(v['shape'])
def same_pad(x,k,s):
    H=x.shape[1]; out=-(-H//s); tot=max((out-1)*s+k-H,0); a=tot//2
    return np.pad(x,((0,0),(a,tot-a),(a,tot-a)))
def conv(x,w,s=1,groups=1):
    # x [C,H,W], w [O,I/g,k,k]
    O,Ig,k,_=w.shape; x=same_pad(x,k,s); C,H,Wd=x.shape
    oh=(H-k)//s+1; ow=(Wd-k)//s+1
    if groups==1:
        out=np.zeros((O,oh,ow),np.float64)
        for i in range(k):
            for j in range(k):
                patch=x[:,i:i+s*oh:s,j:j+s*ow:s]
                out+=np.tensordot(w[:,:,i,j],patch,axes=(1,0))
    else:
        out=np.zeros((O,oh,ow),np.float64)
        for i in range(k):
            for j in range(k):
                out+=w[:,0,i,j][:,None,None]*x[:,i:i+s*oh:s,j:j+s*ow:s]
    return out
def bn(x,p): 
    return (x-W[p+'.running_mean'][:,None,None])/np.sqrt(W[p+'.running_var'][:,None,None]+1e-3)*W[p+'.weight'][:,None,None]+W[p+'.bias'][:,None,None]
r6=lambda x: np.clip(x,0,6)
stages=[(1,3,1,1,16),(2,3,2,6,24),(2,5,2,6,40),(3,3,2,6,80),(3,5,1,6,112),(4,5,2,6,192),(1,3,1,6,320)]
mean=np.array([0.485,0.456,0.406]); std=np.array([0.229,0.224,0.225])
for path in sys.argv[1:]:
    photo=Image.open(path).convert('RGB')
    assert photo.size==(224,224), f'{path}: give a 224x224 photo, so nobody has to agree on resizing'
    img=np.asarray(photo,dtype=np.float64)/255
    x=((img-mean)/std).transpose(2,0,1)
    x=r6(bn(conv(x,W['_conv_stem.weight'],2),'_bn0'))
    b=0; cin=32
    for reps,k,s,e,co in stages:
        for r in range(reps):
            st=s if r==0 else 1; p=f'_blocks.{b}.'; inp=x
            if e!=1: x=r6(bn(conv(x,W[p+'_expand_conv.weight']),p+'_bn0'))
            x=r6(bn(conv(x,W[p+'_depthwise_conv.weight'],st,groups=x.shape[0]),p+'_bn1'))
            x=bn(conv(x,W[p+'_project_conv.weight']),p+'_bn2')
            if st==1 and cin==co: x=x+inp
            cin=co; b+=1
    x=r6(bn(conv(x,W['_conv_head.weight']),'_bn1')).mean(axis=(1,2))
    logits=W['_fc.weight']@x+W['_fc.bias']
    p=np.exp(logits-logits.max()); p/=p.sum()
    top=np.argsort(-p)[:5]
    print(path, 'cats %.4f dogs %.4f'%(p[281:286].sum(),p[151:269].sum()))
    print('  top-5 (class, logit):', [(int(i), round(float(logits[i]),4)) for i in top])
